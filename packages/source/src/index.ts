/**
 * @changeq/source: what changeq reads from MongoDB, shared by the ingest and `changeq resync`:
 * the ingest's settings, the watch scope, the change stream, the event planner and the
 * snapshot copy of the watched collections.
 */
export {
  loadConfig,
  parseFlags,
  USAGE,
  type IngestConfig,
  type StartAt,
  type FullDocumentMode,
  type BeforeChangeMode,
} from './config.js';
export {
  parseWatch,
  parseExclude,
  inScope,
  describeScope,
  scopeMatch,
  singleDatabase,
  SYSTEM_DATABASES,
  type WatchScope,
} from './watch-scope.js';
export type { NamespacePattern } from './namespace-patterns.js';
export { idAfter, idAtOrBefore } from './id-order.js';
// What the reader thread runs beside its MongoDB connection (the change stream, the
// classification of the driver's errors) is only in @changeq/source/stream, which loads no BullMQ:
// this entry does not load the driver (about 20 MB the ingest's main thread would hold for nothing).
export { MongoCode, type UnresumableCode } from './mongo-codes.js';
export type { Batch, StartOptions } from './change-source.js';
export type { MongoFailure } from './failures.js';
export { planEvent, namespaceOf, type EventOrigin } from './planner.js';
export { clusterTimeOf, markTransactions, transactionIdOf } from './transactions.js';
export { assembleFragments, SPLIT_STAGE } from './split-events.js';
export {
  SnapshotReader,
  snapshotNamespaces,
  type SnapshotSource,
  type SnapshotStart,
  type SnapshotBatch,
  type SnapshotBatchRequest,
} from './snapshot-reader.js';
export { copySnapshot, type SnapshotCopy } from './snapshot.js';
export { ingestEnqueuer } from './ingest-enqueuer.js';
export {
  NEEDED_FIELDS,
  PIPELINE_STAGES,
  parsePipeline,
  refuseSnapshotWithReshaping,
  reshapes,
} from './user-pipeline.js';
