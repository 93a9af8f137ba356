/** @changeq/ingest as a library: the ingest itself and what the operator CLI reuses. */
export {
  Ingest,
  describePosition,
  ingestEnqueuer,
  type IngestState,
  type IngestStatus,
  type IngestEvents,
} from './ingest.js';
export { loadConfig, parseFlags, USAGE, type IngestConfig, type StartAt } from './config.js';
export {
  PositionStore,
  decodePosition,
  encodePosition,
  decodeStored,
  encodeStartMarker,
  type StoredPosition,
  type StoredStart,
  type StartMarker,
} from './position-store.js';
export {
  runSnapshot,
  snapshotNamespaces,
  clearSnapshot,
  type SnapshotContext,
} from './snapshot.js';
export { Enqueuer, type PlannedJob, type WatermarkKind } from './enqueuer.js';
export { ChangeSource } from './change-source.js';
export { parseWatch, describeScope, scopeMatch, type WatchScope } from './watch-scope.js';
export { tokenClusterTime, tokenData, compareTokenData, type ResumeToken } from './resume-token.js';
export { planEvent, namespaceOf } from './planner.js';
