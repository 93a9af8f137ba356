/**
 * Retry timing shared by the ingest (reconnecting) and the worker (retrying handlers): capped
 * exponential backoff with "full jitter", and a sleep that an AbortSignal cuts short.
 */

/**
 * Delay before retry number `attempt` (1 = the retry after the first failure): a uniformly
 * random delay between 0 and min(maxMs, baseMs × 2^(attempt-1)), so that many clients failing at
 * once (a database outage) do not retry in lockstep.
 */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(maxMs, baseMs * 2 ** exponent);
  return Math.floor(random() * ceiling);
}

/** The delays of one run of failures: each `next()` is the next retry's; `reset()` on success. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs = 200,
    private readonly capMs = 30_000,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    this.attempt += 1;
    return backoffDelay(this.attempt, this.baseMs, this.capMs, this.random);
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Resolves after `ms` with true, or early with false when `signal` fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * `promise`, or a rejection with what `expired()` returns once `ms` passed first. The promise is
 * left to settle on its own; the race holds its late rejection, so it is never unhandled.
 */
export function withinTime<T>(promise: Promise<T>, ms: number, expired: () => unknown): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(expired()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
