/**
 * HTTP basic authentication (RFC 7617) in front of the whole board: the page, its static files and
 * its API. The comparison takes the same time whatever the request sends: both sides are hashed
 * to fixed-length digests and compared with `timingSafeEqual`, the user and the password always
 * both, so neither the length nor the first differing byte of a guess shows in the timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** The user and password of an `Authorization: Basic ...` header, or undefined. */
export function parseBasicAuth(
  header: string | undefined,
): { user: string; password: string } | undefined {
  const match = /^\s*basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header ?? '');
  if (match?.[1] === undefined) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Constant-time check of a user and password against the expected ones. */
export function credentialsMatch(
  given: { user: string; password: string } | undefined,
  expected: { user: string; password: string },
): boolean {
  const userOk = timingSafeEqual(digest(given?.user ?? ''), digest(expected.user));
  const passwordOk = timingSafeEqual(digest(given?.password ?? ''), digest(expected.password));
  // Both comparisons always run; `&&` on their results leaks nothing about the bytes.
  return given !== undefined && userOk && passwordOk;
}

/**
 * Slows down password guessing: each client (by IP address) has a budget of failed sign-ins that
 * refills at a steady rate; when it is spent, requests with credentials are answered 429 with
 * `Retry-After`, without even checking them (checking would let a guesser go on and learn
 * the answer from the status). A successful sign-in gives the client its whole budget back, so
 * an operator who mistypes now and then is never locked out.
 */
export class FailedSignInThrottle {
  private readonly clients = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly options: {
      /** Failed sign-ins allowed in a burst. */
      burst: number;
      /** One more failed sign-in allowed every `refillMs`. */
      refillMs: number;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private bucket(client: string): { tokens: number; at: number } {
    const now = this.now();
    const { burst, refillMs } = this.options;
    const entry = this.clients.get(client) ?? { tokens: burst, at: now };
    const refilled = Math.floor((now - entry.at) / refillMs);
    if (refilled > 0) {
      entry.tokens = Math.min(burst, entry.tokens + refilled);
      entry.at = entry.tokens === burst ? now : entry.at + refilled * refillMs;
    }
    return entry;
  }

  /** Milliseconds until the client may try again, or 0 when it may try now. */
  retryAfterMs(client: string): number {
    const entry = this.bucket(client);
    return entry.tokens > 0 ? 0 : Math.max(1, entry.at + this.options.refillMs - this.now());
  }

  failed(client: string): void {
    const entry = this.bucket(client);
    entry.tokens = Math.max(0, entry.tokens - 1);
    this.clients.set(client, entry);
    // Forget clients whose budget is whole again, so the map holds only recent guessers.
    if (this.clients.size > 10_000) {
      for (const [key] of this.clients)
        if (this.bucket(key).tokens >= this.options.burst) this.clients.delete(key);
    }
  }

  succeeded(client: string): void {
    this.clients.delete(client);
  }
}

/** 10 failed sign-ins at once, then one every 6 s (at most 600 guesses an hour per address). */
export const DEFAULT_SIGN_IN_THROTTLE = { burst: 10, refillMs: 6_000 };

export function basicAuth(
  expected: { user: string; password: string },
  options: { realm?: string; throttle?: FailedSignInThrottle } = {},
): RequestHandler {
  const realm = options.realm ?? 'changeq board';
  const throttle = options.throttle ?? new FailedSignInThrottle(DEFAULT_SIGN_IN_THROTTLE);
  return (req, res, next) => {
    const client = req.ip ?? req.socket.remoteAddress ?? 'unknown';
    const given = parseBasicAuth(req.headers.authorization);
    const waitMs = given === undefined ? 0 : throttle.retryAfterMs(client);
    if (waitMs > 0) {
      res
        .status(429)
        .set('Retry-After', String(Math.ceil(waitMs / 1000)))
        .set('Cache-Control', 'no-store')
        .type('text/plain')
        .send(
          `Too many failed sign-ins from this address: try again in ${Math.ceil(waitMs / 1000)} s.\n`,
        );
      return;
    }
    if (credentialsMatch(given, expected)) {
      if (given !== undefined) throttle.succeeded(client);
      next();
      return;
    }
    // A request without credentials is a browser asking for the sign-in prompt, not a guess.
    if (given !== undefined) throttle.failed(client);
    res
      .status(401)
      .set('WWW-Authenticate', `Basic realm="${realm}", charset="UTF-8"`)
      .set('Cache-Control', 'no-store')
      .type('text/plain')
      .send('Authentication required: sign in with BOARD_USER and BOARD_PASSWORD.\n');
  };
}
