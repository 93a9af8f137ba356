// Server errors in MongoDB's reply shape: { ok: 0, errmsg, code, codeName, errorLabels? }.

export const CODE_NAMES: Record<number, string> = {
  1: 'InternalError',
  2: 'BadValue',
  4: 'NoSuchKey',
  6: 'HostUnreachable',
  7: 'HostNotFound',
  9: 'FailedToParse',
  11: 'UserNotFound',
  13: 'Unauthorized',
  14: 'TypeMismatch',
  20: 'IllegalOperation',
  26: 'NamespaceNotFound',
  27: 'IndexNotFound',
  40: 'ConflictingUpdateOperators',
  43: 'CursorNotFound',
  47: 'NoMatchingDocument',
  48: 'NamespaceExists',
  50: 'MaxTimeMSExpired',
  52: 'DollarPrefixedFieldName',
  56: 'EmptyFieldName',
  57: 'DotsInFieldName',
  59: 'CommandNotFound',
  66: 'ImmutableField',
  67: 'CannotCreateIndex',
  72: 'InvalidOptions',
  73: 'InvalidNamespace',
  85: 'IndexOptionsConflict',
  86: 'IndexKeySpecsConflict',
  89: 'NetworkTimeout',
  91: 'ShutdownInProgress',
  96: 'OperationFailed',
  112: 'WriteConflict',
  115: 'CommandNotSupported',
  133: 'FailedToSatisfyReadPreference',
  134: 'ReadConcernMajorityNotAvailableYet',
  136: 'CappedPositionLost',
  150: 'StaleEpoch',
  166: 'CommandNotSupportedOnView',
  168: 'InvalidPipelineOperator',
  189: 'PrimarySteppedDown',
  216: 'ElectionInProgress',
  225: 'TransactionTooOld',
  234: 'RetryChangeStream',
  251: 'NoSuchTransaction',
  256: 'TransactionCommitted',
  260: 'InvalidResumeToken',
  262: 'ExceededTimeLimit',
  263: 'OperationNotSupportedInTransaction',
  280: 'ChangeStreamFatalError',
  286: 'ChangeStreamHistoryLost',
  358: 'InternalTransactionNotSupported',
  9001: 'SocketException',
  10107: 'NotWritablePrimary',
  10334: 'BSONObjectTooLarge',
  11000: 'DuplicateKey',
  11600: 'InterruptedAtShutdown',
  11601: 'Interrupted',
  11602: 'InterruptedDueToReplStateChange',
  13297: 'DatabaseDifferCase',
  13388: 'StaleConfig',
  13435: 'NotPrimaryNoSecondaryOk',
  13436: 'NotPrimaryOrSecondary',
  14031: 'OutOfDiskSpace',
  40324: 'Location40324',
  40415: 'Location40415',
  50915: 'BackupCursorOpenConflictWithCheckpoint',
};

export function codeName(code: number): string {
  return CODE_NAMES[code] ?? `Location${code}`;
}

export interface MongoServerErrorOptions {
  labels?: string[];
  codeName?: string;
  extra?: Record<string, unknown>;
  /**
   * The reply carries exactly these labels and no others (failCommand's `errorLabels`, which
   * suppress the labels the server would otherwise add).
   */
  labelOverride?: string[];
}

export class MongoServerError extends Error {
  readonly code: number;
  readonly codeName: string;
  readonly errorLabels: string[];
  readonly extra: Record<string, unknown>;
  readonly labelOverride: string[] | undefined;
  /**
   * Set by getMore when it fails holding a change stream's cursor: only then can the server
   * label it ResumableChangeStreamError (errors raised before, like failCommand's, never are).
   */
  changeStreamCursor = false;

  constructor(code: number, message: string, options: MongoServerErrorOptions = {}) {
    super(message);
    this.code = code;
    this.codeName = options.codeName ?? codeName(code);
    this.errorLabels = options.labels ?? [];
    this.extra = options.extra ?? {};
    this.labelOverride = options.labelOverride;
  }

  toReply(): Record<string, unknown> {
    const reply: Record<string, unknown> = {
      ok: 0,
      errmsg: this.message,
      code: this.code,
      codeName: this.codeName,
      ...this.extra,
    };
    if (this.errorLabels.length > 0) reply.errorLabels = this.errorLabels;
    return reply;
  }
}

export const badValue = (msg: string): MongoServerError => new MongoServerError(2, msg);
export const typeMismatch = (msg: string): MongoServerError => new MongoServerError(14, msg);
export const failedToParse = (msg: string): MongoServerError => new MongoServerError(9, msg);

/**
 * Codes for which MongoDB 7.0 labels an error of a change stream's aggregate or getMore
 * ResumableChangeStreamError: its RetriableError and NetworkError categories, the
 * NeedRetargettingError category (StaleEpoch, StaleConfig; StaleShardVersion 63 is obsolete since
 * 6.1 and no longer resumable), RetryChangeStream and FailedToSatisfyReadPreference
 * (src/mongo/base/error_codes.yml, ErrorLabelBuilder::isResumableChangeStreamError).
 */
export const RESUMABLE_CHANGE_STREAM_CODES = new Set([
  6, 7, 89, 91, 134, 189, 262, 358, 9001, 10107, 11600, 11602, 13435, 13436, 50915, 150, 13388, 234,
  133,
]);

/** The NonResumableChangeStreamError category: labelled so on any command. */
export const NON_RESUMABLE_CHANGE_STREAM_CODES = new Set([280, 286]);

/** Codes that make a retryable write (or commit/abort) carry the RetryableWriteError label. */
export const RETRYABLE_WRITE_CODES = new Set([
  6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
]);
