/**
 * Typed, validated environment variables. Every changeq process reads all of its settings at
 * start-up through one EnvReader, so a bad setting stops it at once with one line that names the
 * variable, quotes the value (with credentials masked) and says how to fix it.
 *
 * Conventions: values are trimmed; a variable set to an empty string counts as unset (so
 * `FOO= cmd` falls back to the default, as in most tools).
 */
import { UserError } from '../errors.js';
import { MONGO_EXAMPLE, driverProblem, mongoUriProblem } from './mongo-uri.js';
import { parseQueuePrefix } from './queue-prefix.js';
import { redactUri } from './redact.js';
import { REDIS_EXAMPLE, redisConnectionOptions, redisUrlProblem } from './redis-url.js';

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
  /**
   * A MongoDB connection string (mongodb:// or mongodb+srv://). Default name MONGODB_URI.
   * `driver: false`: without the driver's parse, which loads the driver (see mongoUriRefusal).
   */
  mongoUri(name?: string, opts?: { driver?: boolean }): string;
  /**
   * A Redis URL (redis:// or rediss://) with a valid port, and for rediss:// the REDIS_TLS_*
   * files readable. Default name REDIS_URL.
   */
  redisUrl(name?: string): string;
  /** QUEUE_PREFIX (or `name`), by the one rule every process applies (see queue-prefix.ts). */
  queuePrefix(name?: string): string;
}

const STACK_HINT = '(npm run stack -- up prints one)';

const mongoUriFix = (name: string) =>
  `set ${name} to a connection string such as ${MONGO_EXAMPLE} ${STACK_HINT}`;

/**
 * The driver's refusal of a connection string, worded as EnvReader.mongoUri words it, for the
 * thread that loads the driver when the one that read the setting did not (the ingest's reader).
 */
export function mongoUriRefusal(uri: string, name = 'MONGODB_URI'): UserError | undefined {
  const problem = driverProblem(uri);
  return problem === undefined
    ? undefined
    : new UserError(`${name}=${JSON.stringify(redactUri(uri))} ${problem}`, mongoUriFix(name));
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

    mongoUri(name = 'MONGODB_URI', opts = {}) {
      const fix = mongoUriFix(name);
      const value = read(name);
      if (value === undefined) return fail(`${name} is not set`, fix);
      const problem = mongoUriProblem(value, opts);
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
      redisConnectionOptions(value, env); // reads the REDIS_TLS_* files now, not at the first connection
      return value;
    },

    queuePrefix(name = 'QUEUE_PREFIX') {
      return parseQueuePrefix(env[name], name);
    },
  };
  return reader;
}
