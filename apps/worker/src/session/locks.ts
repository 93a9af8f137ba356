/**
 * The locks of the jobs a session holds: all carry its token, are extended every
 * lockDuration/2, and are taken back when one lapsed (see `reclaimJob`).
 */
import type { Job } from 'bullmq';
import { reclaimJob } from '@changeq/store';
import type { ReclaimResult } from '../hooks.js';
import { redisFailed, type SessionContext } from './context.js';

/** Locks a held job again after its lock lapsed; 'foreign' means the lease is lost. */
export async function reclaim(ctx: SessionContext, jobId: string): Promise<ReclaimResult> {
  if (!ctx.lease.isValid()) return 'gone';
  const state = await reclaimJob(ctx.redis, ctx.worker, jobId, ctx.token, ctx.lockDurationMs);
  ctx.events.reclaimed({ jobId, result: state });
  if (state === 'moved-back') {
    ctx.log.warn({ jobId }, 'took back a held job that BullMQ had put back in the queue');
  }
  if (state === 'foreign') {
    // Another process locked one of our jobs: it took over, so our lease is gone.
    ctx.lease.invalidate(`job ${jobId} is locked by another process`);
  }
  return state;
}

export class LockExtension {
  private readonly ctx: SessionContext;
  private readonly held: ReadonlyMap<string, Job>;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(ctx: SessionContext, held: ReadonlyMap<string, Job>) {
    this.ctx = ctx;
    this.held = held;
  }

  /** Extends the locks of the jobs held every lockDuration/2 (at least 500 ms) until `stop`. */
  start(): void {
    const every = Math.max(500, Math.floor(this.ctx.lockDurationMs / 2));
    this.timer = setTimeout(() => {
      void this.extendLocks().finally(() => {
        if (!this.closed) this.start();
      });
    }, every);
  }

  stop(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** BullMQ's stalled checker put back a job: take it back if it is held here. */
  stalled(jobId: string): void {
    if (!this.held.has(jobId)) {
      this.ctx.log.warn({ jobId }, 'BullMQ moved a stalled job back to the queue');
      return;
    }
    reclaim(this.ctx, jobId).catch((error: unknown) =>
      redisFailed(this.ctx, 'lock-renewal', error, 'taking back a stalled job failed'),
    );
  }

  private async extendLocks(): Promise<void> {
    if (!this.ctx.lease.isValid() || this.held.size === 0) return;
    const ids = [...this.held.keys()];
    try {
      const failed = await this.ctx.worker.extendJobLocks(
        ids,
        ids.map(() => this.ctx.token),
        this.ctx.lockDurationMs,
      );
      for (const id of failed) if (this.held.has(id)) await reclaim(this.ctx, id);
    } catch (error) {
      redisFailed(this.ctx, 'lock-renewal', error, 'extending job locks failed; retrying');
    }
  }
}
