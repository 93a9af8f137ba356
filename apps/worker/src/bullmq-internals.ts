/**
 * Everything this worker relies on that is BullMQ's implementation rather than its API, in one
 * place. test/bullmq-internals.test.ts checks each assumption against the installed BullMQ, so an
 * upgrade that changes one fails there first, not in production:
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
 * 3. moveStalledJobsToWait-9.lua puts a stalled job back at the head of `wait` (RPUSH, so it is the
 *    next one fetched), in the order of SMEMBERS of the stalled set, i.e. no defined order; and it
 *    counts stalls in the job hash field `stc`, failing the job when `stc > maxStalledCount`.
 *    `reclaimJob` undoes such a move for a job this process still holds.
 * 4. The error a failed moveToFinished throws carries the script's status in `code`
 *    (-2 missing lock, -3 not active, -6 lock owned by another token).
 */
import type { Redis } from 'ioredis';
import { Scripts } from '@changeq/store';

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

/** moveToFinished status codes (BullMQ's ErrorCode) that mean "this process does not own it". */
export const FINISH_MISSING_LOCK = -2;
export const FINISH_NOT_ACTIVE = -3;
export const FINISH_LOCK_MISMATCH = -6;

export function finishErrorCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
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
