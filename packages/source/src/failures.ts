/**
 * What a MongoDB error means for a change stream, decided by the driver's error classes, the
 * server's error labels and its error codes (never by message text), where the error's class is
 * still known: the ingest's reader thread classifies before the error crosses to the main thread.
 */
import {
  MongoClientClosedError,
  MongoError,
  MongoErrorLabel,
  MongoNetworkError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
} from 'mongodb';
import { ChangeStreamClosedError } from './change-source.js';
import { MongoCode, type UnresumableCode } from './mongo-codes.js';

export { MongoCode, type UnresumableCode };

const UNRESUMABLE: ReadonlySet<number> = new Set<number>([
  MongoCode.ChangeStreamHistoryLost,
  MongoCode.InvalidResumeToken,
  MongoCode.ChangeStreamFatalError,
]);

/**
 * Codes MongoDB documents as transient for reads (network, elections, shutdown, cursor loss): the
 * codes a 7.0 server labels ResumableChangeStreamError on a change stream (RetriableError,
 * NetworkError and NeedRetargettingError categories, RetryChangeStream,
 * FailedToSatisfyReadPreference), plus CursorNotFound (resumable by the change streams
 * specification) and the older StaleShardVersion. The label is only added to errors raised once
 * a getMore holds its cursor; the same codes raised before that (a getMore reaching a node that
 * is shutting down or stepping down) arrive unlabelled, the driver does not resume them, and
 * the ingest reopens the stream itself.
 */
const TRANSIENT_CODES: ReadonlySet<number> = new Set<number>([
  MongoCode.HostUnreachable,
  MongoCode.HostNotFound,
  MongoCode.CursorNotFound,
  MongoCode.StaleShardVersion,
  MongoCode.NetworkTimeout,
  MongoCode.ShutdownInProgress,
  MongoCode.FailedToSatisfyReadPreference,
  MongoCode.ReadConcernMajorityNotAvailableYet,
  MongoCode.StaleEpoch,
  MongoCode.PrimarySteppedDown,
  MongoCode.RetryChangeStream,
  MongoCode.ExceededTimeLimit,
  MongoCode.InternalTransactionNotSupported,
  MongoCode.SocketException,
  MongoCode.NotWritablePrimary,
  MongoCode.InterruptedAtShutdown,
  MongoCode.InterruptedDueToReplStateChange,
  MongoCode.StaleConfig,
  MongoCode.NotPrimaryNoSecondaryOk,
  MongoCode.NotPrimaryOrSecondary,
  MongoCode.BackupCursorOpenConflictWithCheckpoint,
]);

/** Labels under which the server or the driver says "try again". */
const TRANSIENT_LABELS = [
  MongoErrorLabel.ResumableChangeStreamError,
  MongoErrorLabel.RetryableWriteError,
  MongoErrorLabel.TransientTransactionError,
];

/**
 * Socket errors the driver lets through unwrapped (a command written to a socket the server
 * had just closed: node's writeAfterFIN, code EPIPE). Only MongoDB's connections can raise
 * them where this classification runs (the reader thread, beside its one client).
 */
const SOCKET_CODES = new Set(['EPIPE', 'ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH']);

/** What a MongoDB error means for the ingest. */
export type MongoFailure =
  /** MongoDB is unreachable, restarting, electing or lost the cursor: reopen and go on. */
  | { kind: 'transient' }
  /** The stream cannot continue from its resume point (what each code means: its wording). */
  | { kind: 'unresumable'; code: UnresumableCode }
  /** An event is larger than BSON allows (16 MB) and the stream does not split it. */
  | { kind: 'event-too-large' }
  /** An event over 16 MB has a field that alone exceeds a fragment: it cannot be split. */
  | { kind: 'event-unsplittable' }
  /**
   * The server does not know a stage of the stream's pipeline: PIPELINE's stages are all older
   * than MongoDB 4.2, so in practice $changeStreamSplitLargeEvent (MongoDB 7.0, 6.0.9+).
   */
  | { kind: 'stage-unsupported'; message: string }
  /** Any other refusal of MongoDB's (access, a bad pipeline): retrying would not cure it. */
  | { kind: 'refused' };

/**
 * Classifies an error of the driver's; null when it did not come from MongoDB or its driver (to be
 * called where MongoDB is the only server talked to, as in the reader thread).
 */
export function classifyMongoError(error: unknown): MongoFailure | null {
  if (error instanceof ChangeStreamClosedError) return { kind: 'transient' };
  if (!(error instanceof MongoError)) {
    const code = (error as NodeJS.ErrnoException | null)?.code;
    return typeof code === 'string' && SOCKET_CODES.has(code) ? { kind: 'transient' } : null;
  }
  const code = typeof error.code === 'number' ? error.code : null;
  if (code !== null && UNRESUMABLE.has(code)) {
    return { kind: 'unresumable', code: code as UnresumableCode };
  }
  if (code === MongoCode.BSONObjectTooLarge) return { kind: 'event-too-large' };
  if (code === MongoCode.ChangeEventUnsplittable) return { kind: 'event-unsplittable' };
  if (code === MongoCode.UnrecognizedPipelineStage) {
    return { kind: 'stage-unsupported', message: error.message };
  }
  if (
    error instanceof MongoNetworkError ||
    error instanceof MongoServerSelectionError ||
    error instanceof MongoTopologyClosedError ||
    error instanceof MongoClientClosedError ||
    TRANSIENT_LABELS.some((label) => error.hasErrorLabel(label)) ||
    (code !== null && TRANSIENT_CODES.has(code))
  ) {
    return { kind: 'transient' };
  }
  return { kind: 'refused' };
}
