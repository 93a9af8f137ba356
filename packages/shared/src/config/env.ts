/**
 * Typed, validated environment variables. Every changeq process reads all of its settings at
 * start-up through one EnvReader, so a bad setting stops it at once with one line that names the
 * variable, quotes the value (with credentials masked) and says how to fix it.
 *
 * Conventions: values are trimmed; a variable set to an empty string counts as unset (so
 * `FOO= cmd` falls back to the default, as in most tools).
 */
import { UserError } from '../errors.js';

export interface EnvReader {
  /** A required string; missing and no default -> UserError naming the variable and `fix`. */
  string(name: string, opts?: { default?: string; fix?: string }): string;
  optionalString(name: string): string | undefined;
  /** A whole number (decimal digits, optional sign) within [min, max]. */
  int(name: string, opts: { default: number; min?: number; max?: number }): number;
  /** true/false, 1/0, yes/no (any case). */
  bool(name: string, opts: { default: boolean }): boolean;
  /** One of `values` (exact, or else ignoring case). */
  oneOf<T extends string>(name: string, values: readonly T[], opts: { default: T }): T;
  /** A MongoDB connection string (mongodb:// or mongodb+srv://). Default name MONGODB_URI. */
  mongoUri(name?: string): string;
  /** A Redis URL (redis:// or rediss://) with a valid port. Default name REDIS_URL. */
  redisUrl(name?: string): string;
}

const MONGO_EXAMPLE = 'mongodb://127.0.0.1:27017/?replicaSet=rs0';
const REDIS_EXAMPLE = 'redis://127.0.0.1:6379';
const STACK_HINT = '(npm run stack -- up prints one)';

/** Query parameters whose values are secrets. */
const SECRET_PARAM = /pass|pwd|secret|token|credential|signature|^sig$|api[-_]?key|auth[-_]?key/i;

/** An authority part made only of hosts and ports: `h1:27017,h2,[::1]:27018`. */
function looksLikeHosts(authority: string): boolean {
  const plain = authority.replace(/\[[^\]]*\]/g, 'h');
  return /^[^:@]*(:\d*)?(,[^:@,]*(:\d*)?)*$/.test(plain);
}

function decodeSafely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function redactQuery(query: string): string {
  return query
    .split(/([&;])/)
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq < 0) return part;
      const key = part.slice(0, eq);
      if (SECRET_PARAM.test(decodeSafely(key))) return `${key}=***`;
      // authMechanismProperties=AWS_SESSION_TOKEN:...,SERVICE_NAME:...
      return part.replace(/((?:AWS_SESSION_TOKEN|TOKEN)(?::|%3A))[^,&;]*/gi, '$1***');
    })
    .join('');
}

/**
 * Masks the credentials in a connection string: the password of `user:password@`, and query
 * parameters such as `password=`, `tlsCertificateKeyFilePassword=` or `...TOKEN:`. The user name
 * and hosts stay visible for debugging. When the input is ambiguous (an unescaped `@`, `/` or `?`
 * in a password) it masks more rather than less. Never throws.
 *
 *     mongodb://app:s3cret@db1,db2/?replicaSet=rs0  ->  mongodb://app:***@db1,db2/?replicaSet=rs0
 */
export function redactUri(uri: string): string {
  try {
    const text = String(uri);
    const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(text)?.[0] ?? '';
    let out = scheme;
    let rest = text.slice(scheme.length);
    const at = rest.lastIndexOf('@');
    if (at >= 0) {
      let userinfoEnd = at;
      if (/[/?#]/.test(rest.slice(0, at))) {
        // The last '@' comes after a '/', '?' or '#': either it belongs to the path or query
        // (and the userinfo, if any, ends at an '@' before the first delimiter), or a password
        // holds an unescaped delimiter (then mask up to the last '@').
        const authorityEnd = rest.search(/[/?#]/);
        const inner = authorityEnd > 0 ? rest.lastIndexOf('@', authorityEnd - 1) : -1;
        if (inner >= 0) userinfoEnd = inner;
        else if (looksLikeHosts(rest.slice(0, authorityEnd))) userinfoEnd = -1;
      }
      if (userinfoEnd >= 0) {
        const userinfo = rest.slice(0, userinfoEnd);
        const colon = userinfo.indexOf(':');
        if (colon >= 0) {
          out += `${userinfo.slice(0, colon)}:***`;
          rest = rest.slice(userinfoEnd);
        }
      }
    }
    const q = rest.indexOf('?');
    if (q >= 0) {
      const hash = rest.indexOf('#', q);
      const end = hash < 0 ? rest.length : hash;
      rest = `${rest.slice(0, q + 1)}${redactQuery(rest.slice(q + 1, end))}${rest.slice(end)}`;
    }
    return out + rest;
  } catch {
    return '[value hidden: it could not be parsed for redaction]';
  }
}

const URI_IN_TEXT = /[A-Za-z][A-Za-z0-9+.-]*:\/\/\S*/g;

/** Masks credentials of every `scheme://...` URI inside a longer text (a log line, an error). */
export function redactText(text: string): string {
  try {
    const value = String(text);
    return value.includes('://') ? value.replace(URI_IN_TEXT, (uri) => redactUri(uri)) : value;
  } catch {
    return '[value hidden: it could not be parsed for redaction]';
  }
}

/** Options for ioredis's constructor, from a redis:// or rediss:// URL. */
export interface RedisConnectionOptions {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
  tls?: Record<string, never>;
}

/** Why a Redis URL is unusable, or undefined when it is fine. */
function redisUrlProblem(url: string): string | undefined {
  if (!/^rediss?:\/\//i.test(url)) return 'does not start with redis:// or rediss://';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    const port = /^rediss?:\/\/(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/?#]*):(\d+)/i.exec(url)?.[1];
    return port !== undefined && Number(port) > 65535
      ? `has the port ${port}, above 65535`
      : 'is not a valid URL';
  }
  if (parsed.hostname === '') return 'has no host';
  if (parsed.port === '0') return 'has port 0';
  const path = parsed.pathname;
  if (path !== '' && path !== '/' && !/^\/\d+$/.test(path)) {
    return `has the path ${JSON.stringify(path)}; the only path Redis URLs take is a database number such as /0`;
  }
  return undefined;
}

/** Connection options for ioredis (a plain object: this package does not depend on ioredis). */
export function redisConnectionOptions(url: string): RedisConnectionOptions {
  const problem = redisUrlProblem(url);
  if (problem !== undefined) {
    throw new UserError(
      `the Redis URL ${JSON.stringify(redactUri(url))} ${problem}`,
      `use a URL such as ${REDIS_EXAMPLE} or rediss://user:password@host:6380/0`,
    );
  }
  const parsed = new URL(url);
  const options: RedisConnectionOptions = {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port === '' ? 6379 : Number(parsed.port),
  };
  if (parsed.username !== '') options.username = decodeSafely(parsed.username);
  if (parsed.password !== '') options.password = decodeSafely(parsed.password);
  const db = /^\/(\d+)$/.exec(parsed.pathname)?.[1];
  if (db !== undefined) options.db = Number(db);
  if (parsed.protocol.toLowerCase() === 'rediss:') options.tls = {};
  return options;
}

/** Why a MongoDB connection string is unusable, or undefined when it looks fine. */
function mongoUriProblem(uri: string): string | undefined {
  const scheme = /^(mongodb|mongodb\+srv):\/\//i.exec(uri);
  if (scheme === null) return 'does not start with mongodb:// or mongodb+srv://';
  const rest = uri.slice(scheme[0].length);
  const authorityEnd = rest.search(/[/?]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const hosts = authority.slice(authority.lastIndexOf('@') + 1);
  if (hosts === '' || hosts.split(',').some((host) => host === '')) return 'has an empty host';
  const isSrv = scheme[1]?.toLowerCase() === 'mongodb+srv';
  if (isSrv && hosts.includes(',')) return 'is a mongodb+srv:// string with more than one host';
  if (isSrv && /:\d*$/.test(hosts.replace(/\[[^\]]*\]/g, ''))) {
    return 'is a mongodb+srv:// string with a port (SRV records supply the ports)';
  }
  for (const host of hosts.split(',')) {
    const port = /:(\d*)$/.exec(host.replace(/\[[^\]]*\]/g, ''))?.[1];
    if (port !== undefined && (port === '' || Number(port) < 1 || Number(port) > 65535)) {
      return `has the invalid port ${JSON.stringify(port)} (ports are 1 to 65535)`;
    }
  }
  return undefined;
}

const TRUE_WORDS = ['true', '1', 'yes'];
const FALSE_WORDS = ['false', '0', 'no'];

export function envReader(env: NodeJS.ProcessEnv = process.env): EnvReader {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const fail = (problem: string, fix: string): never => {
    throw new UserError(problem, fix);
  };
  const orUnset = (name: string, defaultValue: unknown) =>
    `, or unset ${name} to use the default (${String(defaultValue)})`;

  const reader: EnvReader = {
    string(name, opts = {}) {
      const value = read(name);
      if (value !== undefined) return value;
      if (opts.default !== undefined) return opts.default;
      return fail(`${name} is not set`, opts.fix ?? `set ${name} in the environment`);
    },

    optionalString(name) {
      return read(name);
    },

    int(name, opts) {
      const value = read(name);
      if (value === undefined) return opts.default;
      const min = opts.min ?? Number.MIN_SAFE_INTEGER;
      const max = opts.max ?? Number.MAX_SAFE_INTEGER;
      const range =
        opts.min !== undefined && opts.max !== undefined
          ? `from ${min} to ${max}`
          : opts.min !== undefined
            ? `of at least ${min}`
            : opts.max !== undefined
              ? `of at most ${max}`
              : '';
      const wanted = `set ${name} to a whole number${range === '' ? '' : ` ${range}`}${orUnset(name, opts.default)}`;
      if (!/^[+-]?\d+$/.test(value)) {
        return fail(`${name}=${JSON.stringify(value)} is not a whole number`, wanted);
      }
      const number = Number(value);
      if (!Number.isSafeInteger(number) || number < min || number > max) {
        return fail(`${name}=${JSON.stringify(value)} is out of range`, wanted);
      }
      return number;
    },

    bool(name, opts) {
      const value = read(name);
      if (value === undefined) return opts.default;
      const lower = value.toLowerCase();
      if (TRUE_WORDS.includes(lower)) return true;
      if (FALSE_WORDS.includes(lower)) return false;
      return fail(
        `${name}=${JSON.stringify(value)} is not a boolean`,
        `set ${name} to true or false (1/0 and yes/no work too)${orUnset(name, opts.default)}`,
      );
    },

    oneOf(name, values, opts) {
      const value = read(name);
      if (value === undefined) return opts.default;
      const exact = values.find((candidate) => candidate === value);
      if (exact !== undefined) return exact;
      const folded = values.filter((candidate) => candidate.toLowerCase() === value.toLowerCase());
      if (folded.length === 1 && folded[0] !== undefined) return folded[0];
      return fail(
        `${name}=${JSON.stringify(value)} is not one of ${values.join(', ')}`,
        `set ${name} to one of ${values.join(', ')}${orUnset(name, opts.default)}`,
      );
    },

    mongoUri(name = 'MONGODB_URI') {
      const fix = `set ${name} to a connection string such as ${MONGO_EXAMPLE} ${STACK_HINT}`;
      const value = read(name);
      if (value === undefined) return fail(`${name} is not set`, fix);
      const problem = mongoUriProblem(value);
      if (problem !== undefined) {
        return fail(`${name}=${JSON.stringify(redactUri(value))} ${problem}`, fix);
      }
      return value;
    },

    redisUrl(name = 'REDIS_URL') {
      const fix = `set ${name} to a URL such as ${REDIS_EXAMPLE} ${STACK_HINT}`;
      const value = read(name);
      if (value === undefined) return fail(`${name} is not set`, fix);
      const problem = redisUrlProblem(value);
      if (problem !== undefined) {
        return fail(`${name}=${JSON.stringify(redactUri(value))} ${problem}`, fix);
      }
      return value;
    },
  };
  return reader;
}
