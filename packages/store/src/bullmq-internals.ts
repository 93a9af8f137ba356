/**
 * Everything changeq relies on that is BullMQ's implementation rather than its API, in one
 * place. test/bullmq-internals.test.ts checks each assumption against the installed BullMQ
 * (pinned to one exact version in every package.json), so an upgrade that changes one fails
 * there first, not in production.
 *
 * The worker (taking over a dead predecessor's jobs, fetching in order):
 *
 * 1. A job's lock is the Redis string `<queue key prefix><jobId>:lock` (`queue.toKey(jobId) +
 *    ':lock'`) holding the token passed to `getNextJob`. moveToFinished (`removeLock` in
 *    moveToFinished-14.lua) and extendLocks-1.lua only act when that value equals the token they
 *    are given; moveStalledJobsToWait-9.lua only moves a job whose lock key is missing.
 *    So a new process takes over a dead predecessor's active job by writing its own token into
 *    the lock key (`takeOverJobs`): from then on it can extend and finish the job with the public
 *    API, and the stalled checker leaves it alone.
 * 2. moveToActive-11.lua moves a job with `RPOPLPUSH wait active`: the active list holds the newest
 *    job at index 0 and the oldest at the end, and finishing a job removes it with LREM. Reading
 *    the list from the end therefore gives the fetch order of the jobs still active.
 * 2a. moveToActive-11.lua leaves the queue's marker set (`ZADD marker 0 "0"`) whenever it moves a
 *    job to active, so a worker blocked on the marker wakes to check for more: the fetch loop
 *    waits on the marker after a lone job instead of fetching again at once.
 * 3. moveStalledJobsToWait-9.lua puts a stalled job back at the head of `wait` (RPUSH, so it is the
 *    next one fetched), in the order of SMEMBERS of the stalled set, i.e. no defined order; and it
 *    counts stalls in the job hash field `stc`, failing the job when `stc > maxStalledCount`.
 *    `reclaimJob` undoes such a move for a job this process still holds.
 * 4. `moveToCompleted(value, token, fetchNext = true)` moves the next waiting job to active in
 *    the same script and resolves to that job's raw data and id (`[JobJson, id]`, or an empty
 *    list when none is waiting). The error a failed moveToFinished throws carries the script's
 *    status in `code`, one of BullMQ's `ErrorCode`s (JobLockNotExist, JobNotInState,
 *    JobLockMismatch: the job is not this process's to finish; JobNotExist: its hash is gone).
 * 4a. Those two scripts (moveToActive-11.lua, and moveToFinished-14.lua with fetch next) are the
 *    only ones that move a waiting job to a worker's active list. Both take the active list as
 *    KEYS[2] and reply `[jobData, jobId, …]`, `jobId` a bulk string when they moved a job (an
 *    integer otherwise). ioredis (pinned too) sends a script as an EVALSHA (or EVAL) command
 *    built by `Script#execute` and handed to the connection's `sendCommand`; its data handler
 *    calls the command's `resolve` with the raw reply in the order the replies come, which on
 *    one connection is the order Redis ran the commands (a NOSCRIPT retry is a new command, sent
 *    and answered in its own place). `watchMovesToActive` relies on this.
 *
 * The ingest (jobs and a watermark in one MULTI transaction per queue, see enqueuer.ts):
 *
 * 5. `Queue#getBackend().client` is the ioredis connection the queue was given (behind a proxy),
 *    so scripts defined on it run in its transactions, and a job's hash is
 *    `queue.toKey(jobId)` = `queueKeys(prefix, queue).job(jobId)` (keys.ts).
 * 6. `Job#addJob(transaction)` queues the add script on a MULTI without sending it, and the
 *    script's reply in EXEC's is the job id, or a negative code when BullMQ refused the job.
 * 7. A job's stored `data` field is what `Job#asJSON()` returns as `data` (`EncodedJob`).
 * 8. BullMQ runs a script as the ioredis command `<name>:<version>` (`execCommand` of its Redis
 *    backend, with `version` from `dist/cjs/version.js`), defined on a connection from the
 *    `{ name, content, keys }` objects of `dist/cjs/scripts` (`RedisConnection#loadCommands`),
 *    and `addJobToTransaction` adds a job with one of four of them (`ADD_SCRIPTS`). It runs them
 *    through `runCommand`, which `createIORedisClient(client).multi()` gives a transaction.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  createIORedisClient,
  ErrorCode,
  Job,
  type JobJson,
  type JobsOptions,
  type Queue,
} from 'bullmq';
import type { ChainableCommander, Redis } from 'ioredis';
import { Scripts } from './scripts.js';

// ------------------------------------------------------------------------------------------------
// The ingest's write path (5, 6, 7)

/**
 * The connection a queue sends its commands on (5). BullMQ hands out a proxy of the ioredis
 * connection it was given; the proxy passes `defineCommand` and everything else through to it,
 * and its `multi()` returns an ioredis transaction that BullMQ's `Job#addJob` can queue on.
 */
export async function queueConnection(queue: Queue): Promise<Redis> {
  return (await queue.getBackend().client) as unknown as Redis;
}

/**
 * A BullMQ job whose data is already JSON text (7). BullMQ stores a job's data as
 * `JSON.stringify(data)` (Job#asJSON, "prepares a job to be serialized for storage in Redis");
 * the ingest encodes each event in its reader thread, so this job hands that text over as it is
 * instead of parsing it back to an object only to stringify it again on the main thread. What
 * lands in Redis is byte for byte what `new Job(queue, name, JSON.parse(json))` would store; a
 * test holds the two equal.
 */
export class EncodedJob extends Job {
  readonly #json: string;

  constructor(queue: Queue, name: string, json: string, opts: JobsOptions, id: string) {
    super(queue, name, undefined, opts, id);
    this.#json = json;
  }

  override asJSON(): JobJson {
    const json = super.asJSON();
    json.data = this.#json;
    return json;
  }
}

/**
 * Queues BullMQ's add script for `job` on a transaction of its queue's connection, without
 * sending it (6); resolves once it is queued. The transaction comes from `queueConnection(queue)`.
 */
export async function queueAddJob(job: Job, transaction: ChainableCommander): Promise<void> {
  await job.addJob(transaction as unknown as Parameters<Job['addJob']>[0]);
}

interface BullmqScript {
  name: string;
  content: string;
  keys: number;
}

/** The scripts `addJobToTransaction` may run (8), by delay, priority and parent. */
const ADD_SCRIPTS = ['addStandardJob', 'addDelayedJob', 'addPrioritizedJob', 'addParentJob'];

const requireBullmq = createRequire(import.meta.url);
/** BullMQ's own version and scripts: the very modules its RedisConnection defines from (8). */
const BULLMQ_VERSION = (requireBullmq('bullmq/dist/cjs/version.js') as { version: string }).version;
const BULLMQ_SCRIPTS = requireBullmq('bullmq/dist/cjs/scripts/index.js') as Record<
  string,
  BullmqScript | undefined
>;

/**
 * Defines only BullMQ's add scripts on a connection that does nothing but add jobs in
 * transactions (8). ioredis copies every command defined on a connection onto each transaction
 * it makes (`new Pipeline`): with all of BullMQ's scripts and changeq's that is about 120
 * properties, a large part of a small commit's CPU.
 */
export function defineAddScripts(client: Redis): void {
  const commands = client as unknown as Record<string, unknown>;
  for (const name of ADD_SCRIPTS) {
    const script = BULLMQ_SCRIPTS[name];
    if (script?.name !== name) throw new Error(`BullMQ no longer has a script named ${name}`);
    const command = `${name}:${BULLMQ_VERSION}`;
    if (typeof commands[command] === 'function') continue;
    client.defineCommand(command, { numberOfKeys: script.keys, lua: script.content });
  }
}

/** A MULTI on `client` that `queueAddJob` can queue BullMQ's add scripts on (8). */
export function addTransaction(client: Redis): ChainableCommander {
  return createIORedisClient(client).multi() as unknown as ChainableCommander;
}

// ------------------------------------------------------------------------------------------------
// The worker's job locks and fetch order (1 to 4)

/** The part of a BullMQ Queue/Worker this module needs (both have these properties). */
export interface QueueKeysSource {
  keys: Partial<Record<string, string>>;
  toKey(type: string): string;
}

/** One of a queue's Redis keys (`active`, `wait`, `stalled`, `marker`). */
export function queueKey(queue: QueueKeysSource, name: 'active' | 'wait' | 'stalled' | 'marker') {
  const key = queue.keys[name];
  if (key === undefined) throw new Error(`BullMQ no longer names a "${name}" key for its queues`);
  return key;
}

export const LOCK_SUFFIX = ':lock';

export function lockKey(queue: QueueKeysSource, jobId: string): string {
  return `${queue.toKey(jobId)}${LOCK_SUFFIX}`;
}

/**
 * Completes a job that `token` holds (4); with `fetchNext`, BullMQ moves the next waiting job to
 * active in the same call, and this returns it.
 */
export async function completeJob(
  queue: Parameters<typeof Job.fromJSON>[0],
  job: Job,
  returnValue: unknown,
  token: string,
  fetchNext: boolean,
): Promise<Job | undefined> {
  const reply = (await job.moveToCompleted(returnValue, token, fetchNext)) as
    [JobJson | null | undefined, string | undefined] | undefined;
  const [data, id] = reply ?? [];
  return data && id ? Job.fromJSON(queue, data, id) : undefined;
}

/** The part of an ioredis command the watch below looks at (4a). */
interface SentCommand {
  name: string;
  args: unknown[];
  resolve: (reply: unknown) => void;
}

/** A connection's own `sendCommand`, and who listens for moves to active on it, by active list. */
interface MoveWatch {
  send: (command: SentCommand, stream?: unknown) => unknown;
  listeners: Map<string, (jobId: string) => void>;
}

const moveWatches = new WeakMap<Redis, MoveWatch>();
const watchedCommands = new WeakSet<SentCommand>();

const scriptSha = (name: string): string => {
  const script = BULLMQ_SCRIPTS[name];
  if (script?.name !== name) throw new Error(`BullMQ no longer has a script named ${name}`);
  return createHash('sha1').update(script.content).digest('hex');
};
/** The scripts that move a job to active (4a), as ioredis names them in EVALSHA. */
const MOVES_TO_ACTIVE = new Set([scriptSha('moveToActive'), scriptSha('moveToFinished')]);

/**
 * Calls `onMoved(jobId)` for each job that BullMQ's calls on `redis` move to `queue`'s active
 * list, in the order Redis moved them (4a), at the moment the reply comes: before BullMQ's
 * promise chain, whose depth differs between `getNextJob` and `moveToCompleted`, hands the job
 * over. A reply lost with the connection is not seen (its job is in the list all the same).
 * Returns the way to stop; `undefined` for a Redis Cluster, whose redirections may answer one
 * queue's commands on two connections.
 */
export function watchMovesToActive(
  redis: Redis,
  queue: QueueKeysSource,
  onMoved: (jobId: string) => void,
): (() => void) | undefined {
  if (redis.isCluster) return undefined;
  let watch = moveWatches.get(redis);
  if (watch === undefined) {
    const connection = redis as unknown as { sendCommand: MoveWatch['send'] };
    const own: MoveWatch = { send: connection.sendCommand, listeners: new Map() };
    // A command waiting offline is sent again when the connection is up: watched once.
    connection.sendCommand = function (this: unknown, command, stream) {
      if (own.listeners.size > 0 && !watchedCommands.has(command)) watchCommand(own, command);
      return own.send.call(this, command, stream);
    };
    moveWatches.set(redis, own);
    watch = own;
  }
  const active = queueKey(queue, 'active');
  const listeners = watch.listeners;
  listeners.set(active, onMoved);
  return () => {
    if (listeners.get(active) === onMoved) listeners.delete(active);
  };
}

function watchCommand(watch: MoveWatch, command: SentCommand): void {
  if (command.name !== 'evalsha' || !MOVES_TO_ACTIVE.has(command.args[0] as string)) return;
  // EVALSHA's arguments: sha, the number of keys, then the keys (the active list is KEYS[2]).
  const onMoved = watch.listeners.get(command.args[3] as string);
  if (onMoved === undefined) return;
  watchedCommands.add(command);
  const resolve = command.resolve;
  command.resolve = (reply: unknown) => {
    // Runs inside ioredis's reply parser: whatever happens, the command gets its reply.
    try {
      // The raw reply: bulk strings are still Buffers (the command converts them after this).
      const jobId = Array.isArray(reply) ? (reply[1] as unknown) : undefined;
      if (Buffer.isBuffer(jobId)) onMoved(jobId.toString());
      else if (typeof jobId === 'string') onMoved(jobId);
    } finally {
      resolve(reply);
    }
  };
}

/** moveToFinished status codes that mean "this process does not own the job" (4). */
export const FINISH_MISSING_LOCK = ErrorCode.JobLockNotExist;
export const FINISH_NOT_ACTIVE = ErrorCode.JobNotInState;
export const FINISH_LOCK_MISMATCH = ErrorCode.JobLockMismatch;
/** moveToFinished status code of a job whose hash is gone (completed and removed, or deleted) (4). */
export const FINISH_JOB_GONE = ErrorCode.JobNotExist;

const ERROR_CODES = new Set<unknown>(
  Object.values(ErrorCode).filter((value) => typeof value === 'number'),
);

/** The BullMQ `ErrorCode` an error carries (4), if it carries one. */
export function finishErrorCode(error: unknown): ErrorCode | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as { code?: unknown }).code;
  return ERROR_CODES.has(code) ? (code as ErrorCode) : undefined;
}

/** Whether a failed finish means the job is not locked by this process's token (4). */
export function isNotOwnedError(error: unknown): boolean {
  const code = finishErrorCode(error);
  return (
    code === FINISH_MISSING_LOCK || code === FINISH_NOT_ACTIVE || code === FINISH_LOCK_MISMATCH
  );
}

/** The ids of the jobs in the active list, oldest fetch first. */
export async function activeJobsInFetchOrder(
  redis: Redis,
  queue: QueueKeysSource,
): Promise<string[]> {
  const ids = await redis.lrange(queueKey(queue, 'active'), 0, -1);
  return ids.reverse();
}

/**
 * The ids of the `count` jobs moved to active last, oldest fetch first (2): the list's head.
 * Cheaper than the whole list when only the newest jobs' order is unknown.
 */
export async function newestActiveJobs(
  redis: Redis,
  queue: QueueKeysSource,
  count: number,
): Promise<string[]> {
  if (count <= 0) return [];
  const ids = await redis.lrange(queueKey(queue, 'active'), 0, count - 1);
  return ids.reverse();
}

/**
 * Writes `token` into the lock of each job that is still in the active list (whoever held it)
 * and removes it from the stalled set. Returns the ids taken over. Only the lease holder may call
 * this: it is what makes the dead predecessor's jobs ours.
 */
export async function takeOverJobs(
  redis: Redis,
  queue: QueueKeysSource,
  jobIds: readonly string[],
  token: string,
  lockMs: number,
): Promise<string[]> {
  if (jobIds.length === 0) return [];
  return Scripts.of(redis).takeOverJobs(
    { active: queueKey(queue, 'active'), stalled: queueKey(queue, 'stalled') },
    {
      jobPrefix: queue.toKey(''),
      suffix: LOCK_SUFFIX,
      token,
      ms: Math.max(1, Math.round(lockMs)),
    },
    jobIds,
  );
}

/**
 * For a job this process holds whose lock was lost (it expired while Redis was unreachable, and
 * perhaps BullMQ's stalled checker put the job back in `wait`): lock it again with `token`, moving
 * it back from wait to active if needed, so it is neither fetched a second time nor run twice.
 * Never takes a lock that another token holds ('foreign': another process took the job over,
 * so this one is no longer the lease holder).
 */
export async function reclaimJob(
  redis: Redis,
  queue: QueueKeysSource,
  jobId: string,
  token: string,
  lockMs: number,
): Promise<'active' | 'moved-back' | 'gone' | 'foreign'> {
  return Scripts.of(redis).reclaimJob(
    {
      active: queueKey(queue, 'active'),
      wait: queueKey(queue, 'wait'),
      stalled: queueKey(queue, 'stalled'),
      lock: lockKey(queue, jobId),
    },
    jobId,
    token,
    Math.max(1, Math.round(lockMs)),
  );
}
