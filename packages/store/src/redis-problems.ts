/**
 * What a failed Redis connection means for the operator, in one line: a wrong password, a
 * missing permission, a certificate that does not check out, or a database number the server
 * does not have are settings to correct (the process stops at once), not outages to wait out.
 */
import type { Redis } from 'ioredis';
import { UserError, redactUri, redisConnectionOptions } from '@changeq/shared';

export interface RedisFailure {
  problem: string;
  fix: string;
  /** A setting to correct: retrying cannot help. */
  permanent: boolean;
}

const ACL_DOC = 'docs/operations.md, "Redis credentials and ACL"';

const DATABASE_FIX = (setting: string, count: number | undefined) =>
  `use a database number the server has in ${setting} (0 to ${count === undefined ? '15 unless its redis.conf sets "databases"' : count - 1}), or raise "databases" in redis.conf`;

function isDatabaseRefusal(error: unknown): boolean {
  return /DB index is out of range|invalid DB index/i.test(messageOf(error));
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

/** Explains `error`, met while connecting to the Redis of `url` (named by `setting` in fixes). */
export function describeRedisFailure(
  error: unknown,
  url: string,
  setting = 'REDIS_URL',
): RedisFailure {
  const message = messageOf(error);
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
  const at = redactUri(url);
  const permanent = (problem: string, fix: string): RedisFailure => ({
    problem: `${problem} (${message})`,
    fix,
    permanent: true,
  });
  if (/^WRONGPASS\b/.test(message)) {
    return permanent(
      `Redis at ${at} refused the user name or password of ${setting}`,
      `correct them in ${setting} (redis://user:password@host, percent-encoding / @ : % in them), or the user on the server (ACL SETUSER; see ${ACL_DOC})`,
    );
  }
  if (/^NOAUTH\b/.test(message)) {
    return permanent(
      `Redis at ${at} requires a password, and ${setting} has none`,
      `put the password in ${setting}: redis://:password@host for the default user, redis://user:password@host for an ACL user`,
    );
  }
  if (/^NOPERM\b/.test(message)) {
    return permanent(
      `the Redis user of ${setting} lacks a permission changeq needs`,
      `grant the user the commands and keys listed in ${ACL_DOC}`,
    );
  }
  if (isDatabaseRefusal(error)) {
    return permanent(
      `${setting} selects database ${redisConnectionOptions(url).db ?? 0}, which Redis at ${at} does not have`,
      DATABASE_FIX(setting, undefined),
    );
  }
  if (
    /self[- ]signed certificate|unable to (verify|get local issuer)|certificate (has expired|is not yet valid)/i.test(
      message,
    ) ||
    code === 'ERR_TLS_CERT_ALTNAME_INVALID' ||
    code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'
  ) {
    return permanent(
      `the TLS certificate of Redis at ${at} does not check out`,
      'set REDIS_TLS_CA to the PEM file of the authority that signed the server certificate, and use the host name (or IP address) the certificate names',
    );
  }
  if (/wrong version number|packet length too long|unknown protocol/i.test(message)) {
    return permanent(
      `Redis at ${at} does not answer TLS on that port`,
      `use redis:// for a plain port, or the server's tls-port with rediss://`,
    );
  }
  if (/certificate required|alert handshake failure|alert bad certificate/i.test(message)) {
    return permanent(
      `Redis at ${at} refused the TLS connection: it wants a client certificate it trusts`,
      'set REDIS_TLS_CERT and REDIS_TLS_KEY to a client certificate signed by an authority in its tls-ca-cert-file',
    );
  }
  // A connection the server resets at once is often TLS meeting plain text, or a TLS server
  // that wants a client certificate: say so, as a possibility.
  const reset = code === 'ECONNRESET' || /ECONNRESET/.test(message);
  const secure = /^rediss:/i.test(url);
  const hint = !reset
    ? ''
    : secure
      ? '; if the server wants client certificates (tls-auth-clients), set REDIS_TLS_CERT and REDIS_TLS_KEY'
      : '; if that port serves TLS, write the URL as rediss://';
  return {
    problem: `cannot reach Redis at ${at} (${message || 'no answer'})`,
    fix: `check ${setting} and that the server is running and reachable (npm run stack -- up starts a local one)${hint}`,
    permanent: false,
  };
}

/** The failure as the UserError a process stops with. */
export function redisFailureError(error: unknown, url: string, setting = 'REDIS_URL'): UserError {
  const { problem, fix } = describeRedisFailure(error, url, setting);
  return new UserError(problem, fix);
}

/** The database the URL selects is missing: say which ones the server has, when it tells. */
async function databaseError(
  redis: Redis,
  url: string,
  cause: unknown,
  setting: string,
): Promise<UserError> {
  let count: number | undefined;
  try {
    const reply = (await redis.config('GET', 'databases')) as string[];
    if (reply[1] !== undefined) count = Number(reply[1]);
  } catch {
    // CONFIG is often not granted: the server's own refusal then says enough.
  }
  const db = redisConnectionOptions(url).db ?? 0;
  const allowed = count === undefined ? messageOf(cause) : `it has databases 0 to ${count - 1}`;
  return new UserError(
    `${setting} selects database ${db}, which Redis at ${redactUri(url)} does not have (${allowed})`,
    DATABASE_FIX(setting, count),
  );
}

/**
 * Makes sure a connection really uses the database its URL selects. ioredis sends SELECT when it
 * connects but only reports a refusal as an 'error' event, and the connection then goes on in
 * database 0: another deployment's data. Call once the connection is ready.
 */
export async function checkRedisDatabase(
  redis: Redis,
  url: string,
  setting = 'REDIS_URL',
): Promise<void> {
  const db = redisConnectionOptions(url).db;
  if (db === undefined || db === 0) return;
  try {
    await redis.select(db);
  } catch (error) {
    throw await databaseError(redis, url, error, setting);
  }
}

/**
 * The UserError a process stops with for `error`, a setting to correct met while connecting;
 * for a missing database it asks the server (once connected) which ones it has.
 */
export async function redisStartupError(
  redis: Redis,
  url: string,
  error: unknown,
  setting = 'REDIS_URL',
): Promise<UserError> {
  if (!isDatabaseRefusal(error)) return redisFailureError(error, url, setting);
  if (redis.status !== 'ready') {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  return databaseError(redis, url, error, setting);
}
