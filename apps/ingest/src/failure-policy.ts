/**
 * What the ingest does when something fails, in two pure steps: what the failure is (by the
 * error's type: a read error classified in the reader thread, the store's own errors, ioredis'
 * error classes), then what to do about it: retry from the last stored position (reconnecting to
 * Redis and reading the start again when Redis failed), accept a gap, or stop.
 */
import { UserError } from '@changeq/shared';
import { MongoCode, type UnresumableCode } from '@changeq/source';
import { PositionChangedError, classifyRedisError } from '@changeq/store';
import { ReadError, RedisInterruptedError } from './ports.js';

export type Failure =
  | {
      of: 'mongodb';
      kind: 'transient' | 'event-too-large' | 'event-unsplittable' | 'refused';
    }
  | { of: 'mongodb'; kind: 'stage-unsupported'; message: string }
  | { of: 'mongodb'; kind: 'unresumable'; code: UnresumableCode }
  | { of: 'redis'; kind: 'unavailable' | 'full' | 'refused' | 'position-changed' | 'interrupted' }
  /** Something for the operator to fix (a setting, a stored value), already worded. */
  | { of: 'operator' }
  /** Neither MongoDB's nor Redis': a defect, which retrying would repeat. */
  | { of: 'bug' };

/**
 * What an error is. `redis` is the state of the ingest's Redis connection (see
 * classifyRedisError): ioredis fails the commands of a closed connection with a plain Error,
 * which only the connection's state tells apart.
 */
export function classifyFailure(
  error: unknown,
  redis: { readonly status: string; readonly dropped?: boolean },
): Failure {
  if (error instanceof UserError) return { of: 'operator' };
  if (error instanceof ReadError) {
    return error.failure ? { of: 'mongodb', ...error.failure } : { of: 'bug' };
  }
  if (error instanceof PositionChangedError) return { of: 'redis', kind: 'position-changed' };
  if (error instanceof RedisInterruptedError) return { of: 'redis', kind: 'interrupted' };
  const redisFailure = classifyRedisError(error, redis);
  return redisFailure ? { of: 'redis', kind: redisFailure.kind } : { of: 'bug' };
}

export type Decision =
  /**
   * Wait (with backoff), then go on from the last stored position. `reload`: Redis failed, so its
   * queues are set up again and the start is read again (and checked: Redis may have lost it).
   */
  | { action: 'retry'; reload: boolean; what: string }
  /** Continue from now, logging the window that is skipped (--accept-gap). */
  | { action: 'accept-gap' }
  /** Stop the ingest with this error. */
  | { action: 'stop'; error: unknown };

export interface FailureContext {
  /** The operator accepts skipping history that MongoDB no longer has (--accept-gap). */
  acceptGap: boolean;
  /** Where the stream was to continue from, for the messages. */
  since: string;
}

/** What keeps events under 16 MB without splitting them. */
const SHRINK =
  'narrow FULL_DOCUMENT/FULL_DOCUMENT_BEFORE_CHANGE or drop large fields with PIPELINE (e.g. [{"$unset": "fullDocument.blob"}]) so events stay under 16 MB';

export function decide(failure: Failure, error: unknown, context: FailureContext): Decision {
  switch (failure.of) {
    case 'operator':
    case 'bug':
      return { action: 'stop', error };
    case 'mongodb':
      switch (failure.kind) {
        case 'transient':
          return { action: 'retry', reload: false, what: 'MongoDB is unavailable' };
        case 'unresumable':
          if (failure.code === MongoCode.ChangeStreamHistoryLost && context.acceptGap) {
            return { action: 'accept-gap' };
          }
          return { action: 'stop', error: unresumable(failure.code, error, context.since) };
        case 'event-too-large':
          return {
            action: 'stop',
            error: new UserError(
              `a change event after ${context.since} is larger than 16 MB (BSONObjectTooLarge) and the stream does not split it; the stream cannot pass it`,
              `set SPLIT_LARGE_EVENTS=true (MongoDB 7.0 or 6.0.9+ splits the event and the ingest joins it into one job), or ${SHRINK}, then restart`,
            ),
          };
        case 'event-unsplittable':
          return {
            action: 'stop',
            error: new UserError(
              `a change event after ${context.since} is larger than 16 MB and one of its fields alone exceeds a fragment, so $changeStreamSplitLargeEvent cannot split it`,
              `${SHRINK}, then restart`,
            ),
          };
        case 'stage-unsupported':
          return {
            action: 'stop',
            error: new UserError(
              `MongoDB refused the change stream's pipeline: ${failure.message}; with SPLIT_LARGE_EVENTS=true (the default) it ends with $changeStreamSplitLargeEvent, which needs MongoDB 7.0 or 6.0.9+`,
              'upgrade MongoDB, or set SPLIT_LARGE_EVENTS=false (an event over 16 MB then stops the ingest)',
            ),
          };
        case 'refused':
          return { action: 'stop', error };
      }
      break;
    case 'redis':
      switch (failure.kind) {
        case 'unavailable':
          return { action: 'retry', reload: true, what: 'Redis is unavailable' };
        case 'full':
          return {
            action: 'retry',
            reload: true,
            what: 'Redis is full (maxmemory with noeviction): no job can be added until memory is freed or raised',
          };
        case 'position-changed':
          // Reading the start again tells a lost position (stop) from another writer's newer one.
          return {
            action: 'retry',
            reload: true,
            what: 'Redis no longer holds the position this ingest stored',
          };
        case 'interrupted':
          return {
            action: 'retry',
            reload: true,
            what: 'the Redis connection was interrupted: reading the stored position again',
          };
        case 'refused':
          return { action: 'stop', error };
      }
  }
}

/** The name MongoDB gives a code, e.g. ChangeStreamHistoryLost. */
export function codeName(code: number): string {
  return Object.entries(MongoCode).find(([, value]) => value === code)?.[0] ?? String(code);
}

const NEVER_NOW = 'and changeq never restarts from "now" on its own';
const NOT_THIS_DEPLOYMENT =
  "check that REDIS_URL, QUEUE_PREFIX and INGEST_ID name this deployment's ingest (`changeq token show` shows the stored token); to start over, `changeq resync` (copies the watched collections, then streams on from the copy) or `changeq token set --at <ISO time>`";

/** Why the stream cannot continue from its resume point, and the ways on, for each code. */
function unresumable(code: UnresumableCode, error: unknown, since: string): UserError {
  const server = `${codeName(code)} ${code}: ${(error as Error).message}`;
  switch (code) {
    case MongoCode.ChangeStreamHistoryLost:
      return new UserError(
        `the stored resume point (${since}) is no longer in MongoDB's oplog (${server}); changes after it cannot be read, ${NEVER_NOW}`,
        'resync with `changeq resync` (copies the watched collections, then the ingest streams on from the copy; or `changeq token reset` and START_AT=snapshot), or restart with --accept-gap to continue from now and log the skipped window; a larger oplog avoids this',
      );
    case MongoCode.InvalidResumeToken:
      return new UserError(
        `MongoDB cannot use the stored resume token (${since}) (${server}): it is damaged, or was not made by this deployment's change stream; no history was lost, ${NEVER_NOW}`,
        NOT_THIS_DEPLOYMENT,
      );
    case MongoCode.ChangeStreamFatalError:
      return new UserError(
        `the change stream cannot continue from ${since} (${server}): MongoDB raises this when the resume token names an event that is not in its history (a token of another deployment) or when a pipeline changed an event's _id (changeq's own pipeline only filters); ${NEVER_NOW}`,
        NOT_THIS_DEPLOYMENT,
      );
  }
}
