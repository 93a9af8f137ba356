export * from './backoff.js';
export { SlotMap } from './slot-map.js';
export * from './errors.js';
export * from './change-event.js';
export * from './resume-token.js';
export * from './codec.js';
// The driver's own bson module, for processes that must not load the driver (see bson.ts).
export { BSON } from './bson.js';
export * from './config/workers.js';
export * from './config/watch-workers.js';
export * from './handler-api.js';
export * from './routing/index.js';
export * from './config/env.js';
export * from './config/redact.js';
export {
  redisConnectionOptions,
  redisClusterNodes,
  isRedisClusterUrl,
  REDIS_TLS_VARIABLES,
} from './config/redis-url.js';
export type { RedisConnectionOptions, RedisNode } from './config/redis-url.js';
export { createMongoClient, describeMongoFailure, driverMessage } from './config/mongo-uri.js';
export type { MongoFailure } from './config/mongo-uri.js';
export { DEFAULT_QUEUE_PREFIX, parseQueuePrefix } from './config/queue-prefix.js';
export { LATEST_CLUSTER_TIME, parseDateTime } from './config/date-time.js';
export * from './log/logger.js';
