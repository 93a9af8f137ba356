/**
 * What kind of failure a Redis call met, as a metrics label: told by the error's class (ioredis'
 * error classes come from redis-errors) or BullMQ's error code, never by its message. What the
 * failure means for the caller (retry, wait for room, stop) is classifyRedisError's question.
 */
import { ConnectionClosedError } from 'bullmq';
import redisErrors from 'redis-errors';
import { finishErrorCode } from './bullmq-internals.js';
import { SOCKET_CODES } from './redis-errors.js';

export type RedisErrorKind =
  /** The connection failed under the call (ioredis AbortError, MaxRetriesPerRequestError, a socket error). */
  | 'connection'
  /** Redis answered with an error: full (OOM), refused (NOPERM, READONLY), a failed script. */
  | 'reply'
  /** A BullMQ script refused the call with one of its `ErrorCode`s (the job is not ours, or gone). */
  | 'bullmq'
  | 'other';

export function redisErrorKind(error: unknown): RedisErrorKind {
  if (error instanceof redisErrors.ReplyError) return 'reply';
  // AbortError: commands in flight when the socket closed; MaxRetriesPerRequestError extends it.
  if (error instanceof redisErrors.AbortError || error instanceof ConnectionClosedError) {
    return 'connection';
  }
  if (finishErrorCode(error) !== undefined) return 'bullmq';
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && SOCKET_CODES.has(code)) return 'connection';
  return 'other';
}
