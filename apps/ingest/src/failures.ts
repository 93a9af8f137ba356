import {
  MongoClientClosedError,
  MongoError,
  MongoNetworkError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
} from 'mongodb';

/** An error as it crosses the thread boundary to the main thread (see StreamReadError). */
export interface WireError {
  name: string;
  message: string;
  stack?: string;
  code?: number | string;
  codeName?: string;
  /** Set when the error came from MongoDB (the driver), as opposed to a bug or bad data. */
  fromMongo: boolean;
  transient: boolean;
  lostPositionCode: number | null;
}

/**
 * A failure of the stream reader thread, as the main thread sees it: the driver's error classes
 * do not survive the thread boundary, so it carries the classification made where they did.
 */
export class StreamReadError extends Error {
  readonly code: number | string | undefined;
  readonly codeName: string | undefined;
  readonly fromMongo: boolean;
  readonly transient: boolean;
  readonly lostPositionCode: number | null;

  constructor(wire: WireError) {
    super(wire.message);
    this.name = wire.name;
    if (wire.stack !== undefined) this.stack = wire.stack;
    this.code = wire.code;
    this.codeName = wire.codeName;
    this.fromMongo = wire.fromMongo;
    this.transient = wire.transient;
    this.lostPositionCode = wire.lostPositionCode;
  }
}

/** Server codes that mean the stream cannot continue from its resume point. */
export const LOST_POSITION_CODES: Readonly<Record<number, string>> = {
  286: 'ChangeStreamHistoryLost',
  280: 'ChangeStreamFatalError',
  260: 'InvalidResumeToken',
  10334: 'BSONObjectTooLarge',
};

export function lostPositionCode(error: unknown): number | null {
  if (error instanceof StreamReadError) return error.lostPositionCode;
  if (
    error instanceof MongoError &&
    typeof error.code === 'number' &&
    error.code in LOST_POSITION_CODES
  ) {
    return error.code;
  }
  return null;
}

/**
 * Codes MongoDB documents as transient for reads (network, elections, shutdown, cursor loss): the
 * codes a 7.0 server labels ResumableChangeStreamError on a change stream (RetriableError,
 * NetworkError and NeedRetargettingError categories, RetryChangeStream,
 * FailedToSatisfyReadPreference), plus CursorNotFound and the older StaleShardVersion. The label
 * is only added to errors raised once a getMore holds its cursor; the same codes raised before
 * that (a getMore reaching a node that is shutting down or stepping down) arrive unlabelled, the
 * driver does not resume them, and the ingest reopens the stream itself.
 */
const TRANSIENT_MONGO_CODES = new Set([
  6, 7, 43, 63, 89, 91, 133, 134, 150, 189, 234, 262, 358, 9001, 10107, 11600, 11602, 13388, 13435,
  13436, 50915,
]);

export function isTransientMongoError(error: unknown): boolean {
  if (error instanceof StreamReadError) return error.fromMongo && error.transient;
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  if (!(error instanceof MongoError)) return false;
  if (
    error.hasErrorLabel('ResumableChangeStreamError') ||
    error.hasErrorLabel('RetryableWriteError') ||
    error.hasErrorLabel('TransientTransactionError')
  ) {
    return true;
  }
  if (typeof error.code === 'number' && TRANSIENT_MONGO_CODES.has(error.code)) return true;
  if (error instanceof MongoTopologyClosedError || error instanceof MongoClientClosedError) {
    return true;
  }
  // The driver closes a stream after a failed resume; reopening it is the cure. It reports
  // using the closed stream with a generic error class and this message only (NODE-3485).
  return /change ?stream is closed/i.test(error.message);
}

const REDIS_SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EAI_AGAIN',
]);
const REDIS_TRANSIENT_REPLIES =
  /^(LOADING|BUSY|READONLY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|OOM|NOREPLICAS|NOSCRIPT)\b/;

/** Redis is down, restarting, loading, failing over or full: worth waiting for. */
export function isTransientRedisError(error: unknown): boolean {
  if (!(error instanceof Error) || isMongoError(error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  if (code && REDIS_SOCKET_CODES.has(code)) return true;
  if (error.name === 'MaxRetriesPerRequestError') return true;
  if (error.name === 'ReplyError' && REDIS_TRANSIENT_REPLIES.test(error.message)) return true;
  // ioredis: "Connection is closed.", "Command aborted due to connection close" (an AbortError
  // for commands in flight when the socket dropped), "Stream isn't writeable", timeouts.
  return /Connection is closed|connection close|Stream isn't writeable|Connection (timed out|lost)|Command timed out|ECONNREFUSED|ECONNRESET/.test(
    error.message,
  );
}

/** Classifies an error where its class is still known: in the thread that caught it. */
export function encodeError(error: unknown): WireError {
  const e = error instanceof Error ? error : new Error(String(error));
  const { code, codeName } = e as { code?: unknown; codeName?: unknown };
  return {
    name: e.name,
    message: e.message,
    ...(e.stack === undefined ? {} : { stack: e.stack }),
    ...(typeof code === 'number' || typeof code === 'string' ? { code } : {}),
    ...(typeof codeName === 'string' ? { codeName } : {}),
    fromMongo: e instanceof MongoError,
    transient: isTransientMongoError(e),
    lostPositionCode: lostPositionCode(e),
  };
}

/** Whether an error came from MongoDB (in this thread or in the stream reader thread). */
export function isMongoError(error: unknown): boolean {
  return error instanceof MongoError || (error instanceof StreamReadError && error.fromMongo);
}

export function isRedisFull(error: unknown): boolean {
  return error instanceof Error && /^OOM\b/.test(error.message);
}
