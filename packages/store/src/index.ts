/** @changeq/store: the Redis data model of changeq, in one place. */
export * from './keys.js';
