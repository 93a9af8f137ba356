export * from './errors.js';
export * from './change-event.js';
export * from './codec.js';
export * from './config/workers.js';
export * from './handler-api.js';
export * from './routing/index.js';
export * from './config/env.js';
export * from './log/logger.js';
