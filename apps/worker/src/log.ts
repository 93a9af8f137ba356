/**
 * Stand-in for @changeq/shared's createLogger until it lands: one pino logger per process,
 * JSON on stdout (pretty output is left to `pino-pretty` in a pipe).
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(opts: { name: string; level?: string }): Logger {
  return pino({ name: opts.name, level: opts.level ?? 'info' });
}
