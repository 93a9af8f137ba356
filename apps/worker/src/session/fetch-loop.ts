/**
 * The fetch loop: asks Redis for the queue's next jobs whenever the session has room for them,
 * and hands every job received to the fetch order (see fetch-order.ts). When the queue is empty
 * it waits on the queue's marker; it checks the lease before every fetch, so a process whose
 * lease may have expired never fetches.
 */
import type { Redis } from 'ioredis';
import { sleep } from '@changeq/shared';
import { queueKey } from '@changeq/store';
import { redisFailed, type SessionContext } from './context.js';
import type { FetchOrder } from './fetch-order.js';

export class FetchLoop {
  private readonly ctx: SessionContext;
  private readonly order: FetchOrder;
  /** A second connection for the blocking wait on the queue's marker. */
  private readonly blocking: Redis;
  private fetchErrorLogged = false;

  constructor(ctx: SessionContext, order: FetchOrder, blocking: Redis) {
    this.ctx = ctx;
    this.order = order;
    this.blocking = blocking;
  }

  private get fetching(): boolean {
    return !this.ctx.stopSignal.aborted;
  }

  /**
   * Fetches in batches of up to 128 concurrent `getNextJob` calls (doubling while the queue has
   * jobs, back to 1 when it runs dry) whenever the jobs held, received and being fetched leave
   * room; finishing jobs fetches their successors too (see OutcomeWriter).
   */
  async run(): Promise<void> {
    const { lease, stopSignal, worker, token } = this.ctx;
    let retryDelay = 100;
    let batch = 1;
    let fullBefore = false;
    while (this.fetching) {
      if (!lease.isValid() || this.order.waitingToAdopt || this.ctx.paused?.() === true) {
        await sleep(50, stopSignal);
        continue;
      }
      // Refill in batches (a quarter of the prefetch at least), not one job at a time.
      const room = this.order.room();
      if (room < Math.max(1, Math.min(batch, Math.floor(this.order.prefetch / 4)))) {
        await this.order.waitForRoom();
        continue;
      }
      const size = Math.min(room, batch);
      this.order.fetchesStarted(size);
      const results = await Promise.allSettled(
        Array.from({ length: size }, () =>
          worker.getNextJob(token, { block: false }).then((job) => {
            if (job !== undefined) this.order.arrive(job);
            return job;
          }),
        ),
      );
      this.order.fetchesSettled(size);
      let received = 0;
      let failed: unknown;
      for (const result of results) {
        if (result.status === 'rejected') failed = result.reason;
        else if (result.value !== undefined) received++;
      }
      this.order.requestDrain();
      if (!this.fetching) break;
      if (failed !== undefined) {
        redisFailed(this.ctx, 'fetch', failed); // logged below, once per outage
        // Some calls may have moved a job whose reply was lost: adopt them before going on.
        this.order.repliesMayBeLost();
        if (!this.fetchErrorLogged) {
          this.fetchErrorLogged = true;
          this.ctx.log.warn({ err: failed }, 'fetching jobs failed; retrying with backoff');
        }
        await sleep(retryDelay, stopSignal);
        retryDelay = Math.min(retryDelay * 2, 5_000);
        continue;
      }
      retryDelay = 100;
      this.fetchErrorLogged = false;
      if (received === 0) {
        batch = 1;
        await this.waitForJobs();
      } else if (received < size) {
        batch = 1;
      } else if (size === 1 && !fullBefore) {
        // A single job fetched is what a trickle looks like (one job per marker). BullMQ leaves
        // the marker set whenever it moves a job to active (bullmq-internals, 2a), so this wait
        // ends at once, and the next fetch follows as before: one BZPOPMIN in place of a fetch
        // that a trickle would find empty (a script with eleven keys). A second full fetch in a
        // row grows the batch.
        await this.waitForJobs();
      } else {
        batch = Math.min(batch * 2, 128);
      }
      fullBefore = received === size;
    }
  }

  /**
   * Waits (at most a second) until something is added to the queue, or the session stops.
   * The stop must end the wait by itself: stopping disconnects the blocking connection, and
   * ioredis never answers a command queued on a connection that is disconnected between two
   * reconnection attempts (Redis down), which left a halted session waiting here for ever.
   */
  private async waitForJobs(): Promise<void> {
    const { stopSignal } = this.ctx;
    if (stopSignal.aborted) return;
    let onStop: (() => void) | undefined;
    const stopped = new Promise<void>((resolve) => {
      onStop = resolve;
      stopSignal.addEventListener('abort', onStop, { once: true });
    });
    try {
      await Promise.race([this.blocking.bzpopmin(queueKey(this.ctx.worker, 'marker'), 1), stopped]);
    } catch (error) {
      // Stopping disconnects this connection on purpose: only a failure while fetching counts.
      if (this.fetching) {
        redisFailed(this.ctx, 'fetch', error, 'waiting for new jobs failed; retrying');
        await sleep(100, stopSignal);
      }
    } finally {
      stopSignal.removeEventListener('abort', onStop!);
    }
  }
}
