import { hash } from 'node:crypto';

/** The default prefix of every Redis key changeq writes, BullMQ's queues included. */
export const DEFAULT_PREFIX = 'changeq';

/**
 * The BullMQ queue that holds a worker's change events. Worker names are limited to
 * letters, digits, `-` and `_`, so the `.dead` suffix of dead-letter queues cannot collide.
 */
export function eventQueueName(worker: string): string {
  return worker;
}

/** The BullMQ queue that holds a worker's dead letters. */
export function deadLetterQueueName(worker: string): string {
  return `${worker}.dead`;
}

/** Redis keys owned by one ingest (several ingests can share a Redis with distinct ids). */
export function ingestKeys(prefix: string, ingestId: string) {
  const base = `${prefix}:ingest:${ingestId}`;
  return {
    /** The resume token (Extended JSON) after which the stream continues. */
    token: `${base}:token`,
    /** Progress of an initial or forced snapshot copy. */
    snapshot: `${base}:snapshot`,
    /** Per-queue high-water mark: the position of the last event committed to each queue. */
    watermark: (queue: string) => `${prefix}:${queue}:changeq-wm:${ingestId}`,
    /** The lease that makes one ingest the active one (standby ingests wait for it). */
    lease: `${base}:lease`,
  };
}

/** A BullMQ job id derived from the event's resume token: re-reading an event yields the same id. */
export function eventJobId(resumeTokenData: string): string {
  return hash('sha256', resumeTokenData, 'hex').slice(0, 32);
}

/** A BullMQ job name that makes Bull Board readable: `update shop.orders`. */
export function eventJobName(operationType: string, namespace: string): string {
  return namespace ? `${operationType} ${namespace}` : operationType;
}

/** Redis keys owned by one worker name (besides its BullMQ queues). */
export function workerKeys(prefix: string, worker: string) {
  const base = `${prefix}:worker:${worker}`;
  return {
    /** The lease that makes one process the active one for this name (JSON: owner, fence, ...). */
    lease: `${base}:lease`,
    /** Incremented on every lease acquisition: the fencing token of the current owner. */
    fence: `${base}:fence`,
    /** Hash: document identity → the dead letter that blocks it (dead_letter = "block"). */
    blocked: `${base}:blocked`,
    /** Sorted set per blocked document: its parked dead-letter job ids, scored by sequence. */
    parked: (docDigest: string) => `${base}:parked:${docDigest}`,
    /** Sequence numbers of parked events. */
    parkSeq: `${base}:park-seq`,
    /** List of operator commands (retry, discard) that the active process carries out in order. */
    commands: `${base}:commands`,
  };
}
