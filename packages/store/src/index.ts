/** @changeq/store: the Redis data model of changeq, in one place. */
export * from './keys.js';
export * from './codecs/position.js';
export * from './codecs/snapshot-progress.js';
export * from './codecs/watermark.js';
export * from './codecs/lease.js';
export * from './codecs/block-state.js';
export * from './codecs/dead-letter.js';
export { PositionStore } from './position-store.js';
export { Scripts, scriptNames } from './scripts.js';
export { createRedis, connectionName, ingestConnectionName, type RedisRole } from './redis.js';
