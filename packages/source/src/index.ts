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
// What the reader thread runs (the change stream, the planner, the snapshot's reads) is also
// its own entry, @changeq/source/stream, which loads no BullMQ.
export * from './stream.js';
export { snapshotNamespaces } from './snapshot-reader.js';
export { copySnapshot, type SnapshotCopy } from './snapshot.js';
export { ingestEnqueuer } from './ingest-enqueuer.js';
export {
  NEEDED_FIELDS,
  PIPELINE_STAGES,
  parsePipeline,
  refuseSnapshotWithReshaping,
  reshapes,
} from './user-pipeline.js';
