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

export function basicAuth(
  expected: { user: string; password: string },
  realm = 'changeq board',
): RequestHandler {
  return (req, res, next) => {
    if (credentialsMatch(parseBasicAuth(req.headers.authorization), expected)) {
      next();
      return;
    }
    res
      .status(401)
      .set('WWW-Authenticate', `Basic realm="${realm}", charset="UTF-8"`)
      .set('Cache-Control', 'no-store')
      .type('text/plain')
      .send('Authentication required: sign in with BOARD_USER and BOARD_PASSWORD.\n');
  };
}
