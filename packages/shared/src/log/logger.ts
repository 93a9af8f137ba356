/**
 * The logger of every changeq process: pino, writing to stderr (stdout stays free for a
 * command's output), as JSON lines for machines or as readable lines for people.
 *
 * - Level: `opts.level`, else `LOG_LEVEL`, else `info`; validated (a typo is a UserError, not
 *   silence).
 * - Format: `opts.pretty`, else `LOG_FORMAT` (`pretty`, `json`, or `auto`), else pretty exactly
 *   when the destination is a terminal. Pretty output is formatted in-process by pino-pretty's
 *   formatter (no worker-thread transport): lines are written synchronously, in order, and
 *   nothing is lost when the process exits right after logging.
 * - Credentials never reach the output: every string that contains a `scheme://` URI (fields such
 *   as `uri`, `mongodbUri`, `redisUrl`, `url`, nested objects, the message and its format
 *   arguments, child bindings, and the message, stack and cause of errors) has its password and
 *   secret query parameters masked by `redactText`.
 */
import { pino } from 'pino';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';
import { createRequire } from 'node:module';
import type PinoPretty from 'pino-pretty';
import { envReader } from '../config/env.js';
import { redactText, redactUri } from '../config/redact.js';
import { UserError } from '../errors.js';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

export interface CreateLoggerOptions {
  /** The program or component, e.g. `changeq-ingest`; every line carries it. */
  name: string;
  /** Overrides LOG_LEVEL. */
  level?: string;
  /** Overrides LOG_FORMAT: true for readable lines, false for JSON lines. */
  pretty?: boolean;
  /** Where lines go; stderr by default. */
  destination?: NodeJS.WritableStream;
  /** The environment to read LOG_LEVEL, LOG_FORMAT and NO_COLOR from; process.env by default. */
  env?: NodeJS.ProcessEnv;
}

const MAX_DEPTH = 10;

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Returns `value` with credentials in every string masked. Parts without URIs keep their
 * identity (objects are copied only when something in them changes). Errors become pino's
 * serialized form (type, message, stack, cause and own properties) as a plain object.
 */
function redactDeep(value: unknown, depth = 0, copies = new Map<object, unknown>()): unknown {
  if (typeof value === 'string') return value.includes('://') ? redactText(value) : value;
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof URL) return redactUri(value.href);
  // A cycle: point at the copy being made (or the original when nothing needs a change).
  if (copies.has(value)) return copies.get(value);
  if (depth > MAX_DEPTH) return '[nested too deep to log]';
  if (value instanceof Error) {
    return redactDeep({ ...pino.stdSerializers.err(value) }, depth, copies);
  }
  if (Array.isArray(value)) {
    const copy: unknown[] = [...(value as unknown[])];
    copies.set(value, copy);
    let changed = false;
    for (let i = 0; i < copy.length; i++) {
      const redacted = redactDeep(copy[i], depth + 1, copies);
      if (redacted !== copy[i]) {
        copy[i] = redacted;
        changed = true;
      }
    }
    copies.delete(value);
    return changed ? copy : value;
  }
  if (!isPlainObject(value)) return value;
  const copy: Record<string, unknown> = { ...value };
  copies.set(value, copy);
  let changed = false;
  for (const key of Object.keys(copy)) {
    const redacted = redactDeep(copy[key], depth + 1, copies);
    if (redacted !== copy[key]) {
      copy[key] = redacted;
      changed = true;
    }
  }
  copies.delete(value);
  return changed ? copy : value;
}

function checkLevel(level: string): LogLevel {
  const found = LOG_LEVELS.find((candidate) => candidate === level.trim().toLowerCase());
  if (found === undefined) {
    throw new UserError(
      `the log level ${JSON.stringify(level)} is not one of ${LOG_LEVELS.join(', ')}`,
      `use one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  return found;
}

function isTerminal(stream: NodeJS.WritableStream): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}

/** A pino destination that formats each JSON line with pino-pretty and writes it at once. */
function prettyDestination(
  destination: NodeJS.WritableStream,
  colorize: boolean,
): DestinationStream {
  // Loaded only here: JSON lines (every service's usual format) never hold its ~30 modules, in each
  // V8 isolate that logs (the ingest has two).
  const pinoPretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  const prettify = pinoPretty.prettyFactory({
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    singleLine: false,
  });
  return {
    write(line: string) {
      destination.write(prettify(line));
    },
  };
}

export function createLogger(opts: CreateLoggerOptions): Logger {
  const env = envReader(opts.env ?? process.env);
  const level =
    opts.level !== undefined
      ? checkLevel(opts.level)
      : env.oneOf('LOG_LEVEL', LOG_LEVELS, { default: 'info' });
  const destination = opts.destination ?? process.stderr;
  const format = env.oneOf('LOG_FORMAT', LOG_FORMATS, { default: 'auto' });
  const pretty = opts.pretty ?? (format === 'auto' ? isTerminal(destination) : format === 'pretty');
  const colorize =
    pretty && isTerminal(destination) && env.optionalString('NO_COLOR') === undefined;

  const options: LoggerOptions = {
    name: opts.name,
    level,
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: {
      // formatters.log has already turned errors into redacted plain objects; this catches
      // errors that reach the serializer some other way.
      err: (error: unknown) => (error instanceof Error ? redactDeep(error) : error),
    },
    formatters: {
      bindings: (bindings) => redactDeep(bindings) as Record<string, unknown>,
      log: (object) => redactDeep(object) as Record<string, unknown>,
    },
    hooks: {
      logMethod(args, method) {
        const [first, ...rest] = args as unknown[];
        const redactedRest = rest.map((arg) => redactDeep(arg));
        // pino uses err.message as the message when none is given: give it a redacted one.
        if (first instanceof Error && typeof rest[0] !== 'string') {
          const call = [{ err: first }, redactText(first.message), ...redactedRest];
          return method.apply(this, call as Parameters<typeof method>);
        }
        if (
          typeof first === 'object' &&
          first !== null &&
          (first as { err?: unknown }).err instanceof Error &&
          (first as { msg?: unknown }).msg === undefined &&
          typeof rest[0] !== 'string'
        ) {
          const message = redactText((first as { err: Error }).err.message);
          return method.apply(this, [first, message, ...redactedRest] as Parameters<typeof method>);
        }
        const call = [redactDeep(first), ...redactedRest];
        return method.apply(this, call as Parameters<typeof method>);
      },
    },
  };
  const stream: DestinationStream = pretty
    ? prettyDestination(destination, colorize)
    : (destination as DestinationStream);
  return withRedactedBindings(pino(options, stream));
}

/**
 * pino formats the bindings of child loggers without the `bindings` formatter, so redact them on
 * the way in. Children inherit the overrides from the root through their prototype chain.
 */
function withRedactedBindings(logger: Logger): Logger {
  const { child, setBindings } = logger;
  const overrides = {
    child(this: Logger, bindings: Record<string, unknown>, options?: unknown) {
      return (child as unknown as (this: Logger, b: unknown, o?: unknown) => Logger).call(
        this,
        redactDeep(bindings),
        options,
      );
    },
    setBindings(this: Logger, bindings: Record<string, unknown>) {
      setBindings.call(this, redactDeep(bindings) as Record<string, unknown>);
    },
  };
  return Object.assign(logger, overrides);
}
