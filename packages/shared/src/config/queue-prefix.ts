/**
 * QUEUE_PREFIX, the first part of every Redis key changeq writes (BullMQ's queues included). Every
 * process reads it with this one parser, so the ingest, the workers, the board and the CLI can
 * never disagree on a key: an ingest writing `qp:alpha` while a worker serves `qp :alpha` loses
 * events without a word.
 */
import { UserError } from '../errors.js';

/** The default prefix of every Redis key changeq writes. */
export const DEFAULT_QUEUE_PREFIX = 'changeq';

const ALLOWED = /^[A-Za-z0-9_{}-]{1,64}$/;

/**
 * Why `prefix` cannot be a key prefix, or undefined. Keys are `<prefix>:<queue>:...`, so a `:`
 * in the prefix would make one deployment's keys look like another's (`a:b` + `:worker:...`).
 * Braces are allowed for a Redis Cluster hash tag such as `{changeq}`.
 */
export function queuePrefixProblem(prefix: string): string | undefined {
  if (prefix === '') return 'is empty';
  if (prefix.length > 64) return `is ${prefix.length} characters long (at most 64)`;
  if (ALLOWED.test(prefix)) return undefined;
  const bad = [...new Set([...prefix].filter((char) => !/[A-Za-z0-9_{}-]/.test(char)))]
    .map((char) => (/\s/.test(char) ? JSON.stringify(char) : `"${char}"`))
    .join(', ');
  return `holds ${bad}; a prefix may only hold letters, digits, -, _ and {} (a Redis Cluster hash tag)`;
}

/**
 * The prefix from `raw` (an environment variable's value or a flag's: surrounding spaces are
 * dropped as for every setting), or DEFAULT_QUEUE_PREFIX when it is unset or empty.
 * `source` names where it came from in the error line (`QUEUE_PREFIX`, `--prefix`).
 */
export function parseQueuePrefix(raw: string | undefined, source = 'QUEUE_PREFIX'): string {
  const prefix = raw?.trim() ?? '';
  if (prefix === '') return DEFAULT_QUEUE_PREFIX;
  const problem = queuePrefixProblem(prefix);
  if (problem === undefined) return prefix;
  throw new UserError(
    `${source}=${JSON.stringify(raw)} ${problem}`,
    `set ${source} to the prefix every changeq process of this deployment uses, e.g. "${DEFAULT_QUEUE_PREFIX}" or "{${DEFAULT_QUEUE_PREFIX}}"`,
  );
}
