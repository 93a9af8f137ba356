/** @changeq/ingest as a library: the ingest itself and what the operator CLI reuses. */
export {
  Ingest,
  ingestEnqueuer,
  type IngestState,
  type IngestStatus,
  type IngestEvents,
} from './ingest.js';
export { loadConfig, parseFlags, USAGE, type IngestConfig, type StartAt } from './config.js';
export { runSnapshot, snapshotNamespaces, type SnapshotContext } from './snapshot.js';
export { ChangeSource } from './change-source.js';
export { parseWatch, describeScope, scopeMatch, type WatchScope } from './watch-scope.js';
export { planEvent, namespaceOf } from './planner.js';
