/**
 * What a Redis error means for whoever sent the command, decided by ioredis' error classes (from
 * redis-errors, which ioredis raises them with), a reply's prefix (Redis opens every error reply
 * with its kind: `LOADING …`, `WRONGTYPE …`) and a socket error's code, never by message text.
 */
import redisErrors from 'redis-errors';

const { AbortError, ReplyError } = redisErrors;

export type RedisErrorMeaning =
  /** Redis is away, restarting, loading or failing over: the command may succeed later. */
  | { kind: 'unavailable' }
  /** Redis is out of memory (maxmemory with noeviction): nothing is added until it has room. */
  | { kind: 'full' }
  /** Redis answered with an error it would give again (WRONGTYPE, ERR, NOPERM…). */
  | { kind: 'refused'; reply: string };

/** Replies that mean "not now": the server is busy, loading, read-only, or lost its scripts. */
const UNAVAILABLE_REPLIES = new Set([
  'LOADING',
  'BUSY',
  'READONLY',
  'MASTERDOWN',
  'TRYAGAIN',
  'CLUSTERDOWN',
  'NOREPLICAS',
  // Redis lost its scripts (SCRIPT FLUSH, a restart): a new connection sends them again.
  'NOSCRIPT',
]);

/** Socket errors of a connection that is down or cannot be made (yet). */
export const SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EAI_AGAIN',
]);

/** The kind a Redis error reply opens with (`WRONGTYPE` of `WRONGTYPE Operation against…`). */
export function replyPrefix(error: Error): string {
  return error.message.split(' ', 1)[0] ?? '';
}

function classifyReply(error: Error & { previousErrors?: unknown[] }): RedisErrorMeaning {
  const prefix = replyPrefix(error);
  // EXEC refused a transaction because a command was refused while it was queued (an OOM, say):
  // ioredis hands those on as previousErrors, and the first of them is the reason.
  const first = error.previousErrors?.[0];
  if (prefix === 'EXECABORT' && first instanceof ReplyError) return classifyReply(first);
  if (prefix === 'OOM') return { kind: 'full' };
  if (UNAVAILABLE_REPLIES.has(prefix)) return { kind: 'unavailable' };
  return { kind: 'refused', reply: prefix };
}

/**
 * Classifies an error of a command sent on `connection`; null when it did not come from Redis
 * or ioredis. ioredis rejects the commands of a closed connection, and a connect cut off by a
 * close, with a plain `Error` ("Connection is closed."): such an error counts as Redis' while the
 * connection is not ready, or when it `dropped` since the command was sent (the rejection may
 * surface only once the connection is back).
 */
export function classifyRedisError(
  error: unknown,
  connection: { readonly status: string; readonly dropped?: boolean },
): RedisErrorMeaning | null {
  if (error instanceof ReplyError) return classifyReply(error);
  // Commands in flight when the connection dropped, or that outlived their reconnections
  // (MaxRetriesPerRequestError is an AbortError).
  if (error instanceof AbortError) return { kind: 'unavailable' };
  if (!(error instanceof Error)) return null;
  const code = (error as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && SOCKET_CODES.has(code)) return { kind: 'unavailable' };
  if (error.constructor === Error && (connection.status !== 'ready' || connection.dropped)) {
    return { kind: 'unavailable' };
  }
  return null;
}
