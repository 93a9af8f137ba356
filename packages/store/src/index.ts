/** @changeq/store: the Redis data model of changeq, in one place. */

// The key schema.
export * from './keys.js';

// The stored values.
export * from './codecs/position.js';
export * from './codecs/snapshot-progress.js';
export * from './codecs/watermark.js';
export * from './codecs/lease.js';
export * from './codecs/block-state.js';
export * from './codecs/dead-letter.js';
export * from './codecs/ring.js';
export * from './codecs/pause.js';

// Scripts, connections and BullMQ.
export { Scripts, scriptNames } from './scripts.js';
export { createRedis, connectionName, ingestConnectionName, type RedisRole } from './redis.js';
export { REDIS_COMMANDS, SCRIPT_COMMANDS, redisAclRules } from './redis-acl.js';
export {
  checkRedisDatabase,
  describeRedisFailure,
  redisFailureError,
  redisStartupError,
  type RedisFailure,
} from './redis-problems.js';
export * from './bullmq-internals.js';
export { classifyRedisError, replyPrefix, type RedisErrorMeaning } from './redis-errors.js';
export { redisErrorKind, type RedisErrorKind } from './redis-error-kind.js';

// The stores.
export { PositionStore, PositionChangedError } from './position-store.js';
export { Enqueuer, unfinishedJobs, type EnqueuerOptions, type PlannedJob } from './enqueuer.js';
export {
  RingStore,
  RingChangedError,
  nextEpoch,
  HANDOFF_TTL_S,
  type RingFence,
} from './ring-store.js';
export { Lease, type LeaseOptions, type LeaseDataLoss } from './lease.js';
export { FencedError } from './fenced-error.js';
export { IngestMembers, type IngestMember } from './ingest-members.js';
export { DocumentBlocks } from './document-blocks.js';
export {
  PauseWatch,
  PAUSE_REPORT_TTL_MS,
  describePauseTarget,
  readPause,
  requestPause,
} from './pause.js';
export {
  listDeadLetters,
  retryDeadLetter,
  discardDeadLetter,
  type DeadLetterTarget,
  type DeadLetterEntry,
  type CommandReceipt,
  type Selection,
} from './dead-letters.js';

// The read side.
export {
  JOB_STATES,
  readJobCounts,
  queueJobCounts,
  readWorkerRecord,
  readLiveWorkers,
  type JobState,
  type JobCounts,
  type WorkerRecord,
} from './read-side.js';
