/**
 * What a worker reports beyond its scheduler's hooks: the Redis calls that failed and are being
 * retried, the held jobs whose locks were found lapsed, and Redis losing the worker's data. The
 * seam for metrics: every hook is optional, synchronous and isolated, like the scheduler's.
 */
import type { LeaseDataLoss, RedisErrorKind } from '@changeq/store';
import { fanOut, type SchedulerHooks } from './scheduler/hooks.js';

/** Where a worker's Redis call failed (each is retried). */
export type RedisOperation =
  /** Fetching jobs, ordering them, or waiting for new ones. */
  | 'fetch'
  /** Extending the locks of the jobs held. */
  | 'lock-renewal'
  /** Renewing or acquiring the lease. */
  | 'lease'
  /** Reading or carrying out the operators' dead-letter commands. */
  | 'commands'
  /** Writing what became of a job (completed, dead-lettered, parked, dropped, a failed attempt). */
  | 'outcome';

export type ReclaimResult = 'active' | 'moved-back' | 'gone' | 'foreign';

export interface WorkerHooks extends SchedulerHooks {
  /** A Redis call failed and will be tried again; `error` tells what kind of failure it met. */
  redisFailed?(failure: { operation: RedisOperation; error: RedisErrorKind }): void;
  /**
   * A held job's lock had lapsed (Redis was unreachable past the lock's duration, or the lock is
   * gone): `active` locked again, `moved-back` taken back from the queue, `gone` vanished from
   * the queue, `foreign` locked by another process (this one lost the lease).
   */
  reclaimed?(reclaim: { jobId: string; result: ReclaimResult }): void;
  /** Redis lost this worker's data: the lease's fencing counter went back (see Lease). */
  dataLost?(loss: LeaseDataLoss & { jobsHeld: number }): void;
  /**
   * Jobs of moved documents waiting for their old owners' handoffs (a ring change): how many
   * wait now, and how long each of those just released had waited.
   */
  held?(report: { waiting: number; releasedMs: readonly number[] }): void;
  /**
   * Jobs received from Redis were given to the scheduler in fetch order: how long each waited
   * from its reply to that moment (for the jobs fetched before it, or for a read of the active
   * list that tells their order; see FetchOrder).
   */
  ordered?(waitedMs: readonly number[]): void;
}

export type WorkerEvents = Required<
  Pick<WorkerHooks, 'redisFailed' | 'reclaimed' | 'dataLost' | 'held' | 'ordered'>
>;

/** The worker's own hooks of every object in `list`, each call isolated. */
export function workerEvents(
  list: readonly WorkerHooks[],
  onHookError: (error: unknown) => void,
): WorkerEvents {
  return {
    redisFailed: fanOut(list, 'redisFailed', onHookError),
    reclaimed: fanOut(list, 'reclaimed', onHookError),
    dataLost: fanOut(list, 'dataLost', onHookError),
    held: fanOut(list, 'held', onHookError),
    ordered: fanOut(list, 'ordered', onHookError),
  };
}
