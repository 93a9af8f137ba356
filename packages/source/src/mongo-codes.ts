// Plain numbers, without the driver: the ingest's main thread decides by them (failure-policy).
/**
 * The server's error codes changeq acts on, by the names MongoDB gives them
 * (src/mongo/base/error_codes.yml). The driver has such a table too, but keeps it internal.
 */
export const MongoCode = {
  HostUnreachable: 6,
  HostNotFound: 7,
  CursorNotFound: 43,
  StaleShardVersion: 63,
  NetworkTimeout: 89,
  ShutdownInProgress: 91,
  FailedToSatisfyReadPreference: 133,
  ReadConcernMajorityNotAvailableYet: 134,
  StaleEpoch: 150,
  PrimarySteppedDown: 189,
  RetryChangeStream: 234,
  InvalidResumeToken: 260,
  ExceededTimeLimit: 262,
  ChangeStreamFatalError: 280,
  ChangeStreamHistoryLost: 286,
  InternalTransactionNotSupported: 358,
  SocketException: 9001,
  NotWritablePrimary: 10107,
  BSONObjectTooLarge: 10334,
  /** An unknown aggregation stage (an assertion code: not in error_codes.yml). */
  UnrecognizedPipelineStage: 40324,
  /** $changeStreamSplitLargeEvent: one field alone does not fit in a fragment. */
  ChangeEventUnsplittable: 7182500,
  InterruptedAtShutdown: 11600,
  InterruptedDueToReplStateChange: 11602,
  StaleConfig: 13388,
  NotPrimaryNoSecondaryOk: 13435,
  NotPrimaryOrSecondary: 13436,
  BackupCursorOpenConflictWithCheckpoint: 50915,
} as const;

/** The codes that mean the stream cannot continue from its resume point. */
export type UnresumableCode =
  | typeof MongoCode.ChangeStreamHistoryLost
  | typeof MongoCode.InvalidResumeToken
  | typeof MongoCode.ChangeStreamFatalError;
