/**
 * The key schema: every Redis key changeq reads or writes, BullMQ's queues included, is named
 * here and nowhere else.
 *
 *   <prefix>:<queue>:…                          BullMQ's keys of a queue (jobs, wait, active, …)
 *   <prefix>:<queue>:changeq-wm:<ingest>[:snapshot]  an ingest's watermark in that queue
 *   <prefix>:<queue>:changeq-fence:<ingest>      the ingest leader's fence copy in that queue
 *   <prefix>:ingest:<ingest>:token|snapshot|lease|fence|members  an ingest's position, copy
 *                                                   progress, lease, fencing counter, processes
 *   <prefix>:ingest:<ingest>:pause|pause-state       an operator's pause, and the ingest's answer
 *   <prefix>:worker:<worker>:lease|fence|blocked|parked:<digest>|park-seq|commands
 *   <prefix>:worker:<worker>:pause|pause-state       an operator's pause, and the worker's answer
 *   <prefix>:worker:<worker>:handoff:<epoch>|held  a worker's checkpoints at ring changes
 *   <prefix>:ring                                   the ring's epochs (names, switch positions)
 *   <prefix>:ring:fence:<ingest>                    the ingest leader's fence copy for the ring
 *
 * Redis Cluster hashes only the part of a key between the first `{` and `}` when there is one.
 * On a cluster, `slotName` wraps each worker name (and each ingest id) in such a hash tag:
 *
 *   <prefix>:{<worker>}:…   <prefix>:{<worker>}.dead:…   <prefix>:worker:{<worker>}:…
 *   <prefix>:ingest:{<ingest>}:…   <prefix>:{ring}…
 *
 * so a worker's queues, the watermarks in them and the worker's own keys share one slot, as
 * every script and transaction here needs (each touches the keys of one queue, of one worker,
 * of one ingest or of the ring at a time), while different workers' queues spread over the
 * masters. On a
 * single Redis the names stay bare, as they always were: existing deployments' keys never move.
 */
import { hash } from 'node:crypto';
import { DEFAULT_QUEUE_PREFIX } from '@changeq/shared';

/**
 * The default prefix of every Redis key changeq writes, BullMQ's queues included (QUEUE_PREFIX,
 * read by every process with `parseQueuePrefix` of @changeq/shared).
 */
export const DEFAULT_PREFIX = DEFAULT_QUEUE_PREFIX;

/**
 * Whether key names carry hash tags: chosen once per process (and per thread: the ingest's reader
 * thread chooses too) by the kind of Redis it talks to, before the first name is made. Undefined
 * until then; the first name made without a choice fixes it to bare names.
 */
let hashTags: boolean | undefined;

/**
 * Names keys for a Redis Cluster (`true`: hash tags) or a single Redis. A process talks to one
 * deployment: changing the choice after names were made is a programming error (names already
 * handed out would no longer match), so it throws.
 */
export function useHashTags(on: boolean): void {
  if (hashTags !== undefined && hashTags !== on) {
    throw new Error(
      `Redis key names were already made ${hashTags ? 'for a Redis Cluster' : 'for a single Redis'}; one process cannot use both`,
    );
  }
  hashTags = on;
}

/** Whether this process names keys for a Redis Cluster (see useHashTags). */
export function hashTagsInUse(): boolean {
  return hashTags === true;
}

/** The part of a worker's (or an ingest's) keys that Redis Cluster hashes. */
function slotName(name: string): string {
  hashTags ??= false;
  return hashTags ? `{${name}}` : name;
}

/**
 * The BullMQ queue that holds a worker's change events. Worker names are limited to
 * letters, digits, `-` and `_`, so the `.dead` suffix of dead-letter queues cannot collide.
 */
export function eventQueueName(worker: string): string {
  return slotName(worker);
}

/** The BullMQ queue that holds a worker's dead letters. */
export function deadLetterQueueName(worker: string): string {
  return `${slotName(worker)}.dead`;
}

/**
 * A BullMQ queue's own keys as BullMQ names them (`Queue#toKey`): the prefix of its job hashes
 * (`<prefix>:<queue>:<jobId>`), which the Lua scripts extend with job ids.
 */
export function queueKeys(prefix: string, queue: string) {
  const jobPrefix = `${prefix}:${queue}:`;
  return {
    jobPrefix,
    job: (jobId: string) => `${jobPrefix}${jobId}`,
  };
}

/** What a watermark orders: stream events (resume tokens) or a snapshot copy's documents. */
export type WatermarkKind = 'stream' | 'snapshot';

/** Redis keys owned by one ingest (several ingests can share a Redis with distinct ids). */
export function ingestKeys(prefix: string, ingestId: string) {
  const base = `${prefix}:ingest:${slotName(ingestId)}`;
  return {
    /** The resume token (Extended JSON) after which the stream continues. */
    token: `${base}:token`,
    /** Progress of an initial or forced snapshot copy. */
    snapshot: `${base}:snapshot`,
    /**
     * Per-queue high-water mark: the position of the last event committed to each queue. It
     * lives beside the queue's own keys, so that it shares the queue's cluster slot.
     */
    watermark: (queue: string, kind: WatermarkKind = 'stream') =>
      `${queueKeys(prefix, queue).jobPrefix}changeq-wm:${ingestId}${kind === 'stream' ? '' : ':snapshot'}`,
    /** The lease that makes one ingest the active one (standby ingests wait for it). */
    lease: `${base}:lease`,
    /** The lease's fencing counter: incremented at every acquisition (the leader's number). */
    fence: `${base}:fence`,
    /** Hash: the ingest processes of this id (leader and standbys), owner → JSON, with expiry. */
    members: `${base}:members`,
    /**
     * A copy of the leader's fencing number in a queue's slot: every commit to the queue
     * WATCHes it (a MULTI cannot span slots, so the lease's own counter cannot be watched there).
     */
    queueFence: (queue: string) => `${queueKeys(prefix, queue).jobPrefix}changeq-fence:${ingestId}`,
    /** The copy that fences the ring's writes (it must share the ring key's slot). */
    ringFence: `${ringKey(prefix)}:fence:${ingestId}`,
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

/** Key of a document's parked line (document identities can be long: a digest keeps keys short). */
function docDigest(doc: string): string {
  return hash('sha256', doc, 'hex').slice(0, 32);
}

/** Redis keys owned by one worker name (besides its BullMQ queues). */
export function workerKeys(prefix: string, worker: string) {
  const base = `${prefix}:worker:${slotName(worker)}`;
  return {
    /** The lease that makes one process the active one for this name (JSON: owner, fence, ...). */
    lease: `${base}:lease`,
    /** Incremented on every lease acquisition: the fencing token of the current owner. */
    fence: `${base}:fence`,
    /** Hash: document identity → the dead letter that blocks it (dead_letter = "block"). */
    blocked: `${base}:blocked`,
    /** Sorted set per blocked document: its parked dead-letter job ids, scored by sequence. */
    parked: (doc: string) => `${base}:parked:${docDigest(doc)}`,
    /** Sequence numbers of parked events. */
    parkSeq: `${base}:park-seq`,
    /** List of operator commands (retry, discard) that the active process carries out in order. */
    commands: `${base}:commands`,
    /**
     * Set when this worker's checkpoint of ring epoch `epoch` passed: every job its queue held
     * before the switch finished, so the documents it lost may run on their new owners (a string
     * `key-…`: the checkpoint placed before an event that changed its document's routing key).
     */
    handoff: (epoch: number | string) => `${base}:handoff:${epoch}`,
    /** How many jobs this worker holds back waiting for other workers' handoffs (short TTL). */
    held: `${base}:held`,
  };
}

/** What `changeq pause` stops: an ingest (by id) or a worker name. */
export type PauseTarget = { kind: 'ingest'; id: string } | { kind: 'worker'; name: string };

/** The pause keys of an ingest or a worker name (codecs/pause.ts, pause.ts). */
export function pauseKeys(prefix: string, target: PauseTarget) {
  const base =
    target.kind === 'ingest'
      ? `${prefix}:ingest:${slotName(target.id)}`
      : `${prefix}:worker:${slotName(target.name)}`;
  return {
    /** Set by `changeq pause`: the ingest enqueues nothing, the worker starts no handler call. */
    pause: `${base}:pause`,
    /** What the active process reports about the pause (expires with a process that died). */
    pauseState: `${base}:pause-state`,
  };
}

/** The ring of a deployment: which worker names route events, by epoch (codecs/ring.ts). */
export function ringKey(prefix: string): string {
  // A slot of its own on a cluster, shared with the leader's fence copy for it (ringFence).
  return `${prefix}:${slotName('ring')}`;
}

/** Job id of the handoff marker an ingest puts in a queue that loses documents at `epoch`. */
export function handoffJobId(epoch: number | string): string {
  return `handoff-${epoch}`;
}

/** BullMQ job name of a handoff marker (Bull Board shows it). */
export const HANDOFF_JOB_NAME = 'handoff';
