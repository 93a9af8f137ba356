/**
 * @changeq/source/stream: what the ingest's reader thread runs beside its MongoDB connection: the
 * change stream, the event planner, the snapshot copy's reads and the classification of MongoDB
 * errors (nothing here loads BullMQ or opens Redis connections).
 */
export {
  ChangeSource,
  ChangeStreamClosedError,
  TRANSACTION_READ_AHEAD,
  type Batch,
  type StartOptions,
} from './change-source.js';
export {
  classifyMongoError,
  MongoCode,
  type MongoFailure,
  type UnresumableCode,
} from './failures.js';
export { planEvent, namespaceOf, type EventOrigin } from './planner.js';
export { clusterTimeOf, markTransactions, transactionIdOf } from './transactions.js';
export { assembleFragments, SPLIT_STAGE } from './split-events.js';
export {
  SnapshotReader,
  type SnapshotSource,
  type SnapshotStart,
  type SnapshotBatch,
  type SnapshotBatchRequest,
} from './snapshot-reader.js';
