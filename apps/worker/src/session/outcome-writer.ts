/**
 * The one place where what became of a task is written to Redis: an event job completed, kept
 * as a dead letter (blocking its document under "block"), parked behind its document's dead
 * letter, or dropped; a re-run from the dead-letter queue done or failed again; and a failed
 * attempt that will be retried. What to write is decided before (see outcomes.ts).
 *
 * Finishing an event job may move the next waiting job to active in the same call (BullMQ's
 * `fetchNext`: one round trip instead of two). The writer hands that job to the fetch order,
 * which puts it in its place, and tells it when a job it held has left.
 */
import type { Job, Queue } from 'bullmq';
import type { EventJobData, Logger } from '@changeq/shared';
import {
  completeJob,
  FINISH_JOB_GONE,
  finishErrorCode,
  isNotOwnedError,
  type DeadLetterInfo,
  type DeadLetterJobData,
  type DocumentBlocks,
} from '@changeq/store';
import type { HandlerFailure } from '../scheduler/invoke.js';
import { StopWork } from '../scheduler/scheduler.js';
import { attemptProgress } from './attempts.js';
import { ensureLease, type SessionContext } from './context.js';
import { reclaim } from './locks.js';
import type { Outcome } from './outcomes.js';
import type { EventTask, ReplayTask, WorkTask } from './tasks.js';

/** The fetch order as the writer sees it: where fetched jobs go in, and finished ones leave. */
export interface JobIntake {
  /**
   * Whether the call finishing `jobId` may fetch the next job too; if so, it counts as a fetch in
   * flight.
   */
  startFetchWithFinish(jobId: string): boolean;
  /** That fetch settled: the job it moved to active (or none), or 'lost' (the reply may be lost). */
  fetchWithFinishSettled(result: Job | undefined | 'lost'): void;
  /** A held job is finished: it leaves the session. */
  release(jobId: string): void;
}

export interface OutcomeWriterOptions {
  /** The worker's event queue. */
  queueName: string;
  /** Its dead-letter queue, `<worker>.dead`. */
  dlqName: string;
  dlq: Queue;
  blocks: DocumentBlocks;
  intake: JobIntake;
}

export class OutcomeWriter {
  private readonly ctx: SessionContext;
  private readonly opts: OutcomeWriterOptions;
  private readonly log: Logger;

  constructor(ctx: SessionContext, opts: OutcomeWriterOptions) {
    this.ctx = ctx;
    this.opts = opts;
    this.log = ctx.log;
  }

  /** Writes what became of a task (the promise of the write itself: no async frame on top). */
  write(task: WorkTask, outcome: Outcome): Promise<void> {
    try {
      ensureLease(this.ctx.lease);
    } catch (error) {
      return Promise.reject(error);
    }
    if (task.kind === 'event') return this.writeEvent(task, outcome);
    if (task.kind === 'replay') return this.writeReplay(task, outcome);
    return Promise.reject(new Error(`${task.id} is a re-run line: it is expanded, never finished`));
  }

  /** Persists a failed attempt that the scheduler will retry after its backoff. */
  async attemptFailed(task: WorkTask, attempt: number, failure: HandlerFailure): Promise<void> {
    ensureLease(this.ctx.lease);
    if (task.kind === 'replay-line') return;
    await task.job.updateProgress(attemptProgress(attempt, failure));
    this.log.info(
      { jobId: task.jobId, attempt, error: failure.message },
      'handler failed; retrying after backoff',
    );
  }

  private writeEvent(task: EventTask, outcome: Outcome): Promise<void> {
    // The common case, without an async frame held for the round trip.
    if (outcome.kind === 'completed') {
      return this.finishJob(task, storableReturnValue(outcome.returnValue));
    }
    return this.writeEventOutcome(task, outcome);
  }

  private async writeEventOutcome(task: EventTask, outcome: Outcome): Promise<void> {
    const { dlqName, queueName, blocks } = this.opts;
    const origin = { originalQueue: queueName, originalJobId: task.jobId };
    switch (outcome.kind) {
      case 'completed':
        return this.finishJob(task, storableReturnValue(outcome.returnValue));
      case 'dead-lettered': {
        const { error, attempts, failedAt } = outcome;
        await this.upsertDeadLetter(task, { kind: 'dead', ...origin, error, attempts, failedAt });
        if (outcome.blocks !== null) {
          await blocks.set(outcome.blocks, { dead: task.jobId, state: 'blocked', since: failedAt });
        }
        this.logDeadLettered(task, outcome.attempts, error.message);
        return this.finishJob(task, { deadLetter: { queue: dlqName, jobId: task.jobId } });
      }
      case 'parked': {
        const { doc, blockedBy, parkedAt } = outcome;
        const seq = await blocks.addParked(doc, task.jobId);
        await this.upsertDeadLetter(task, { kind: 'parked', ...origin, blockedBy, seq, parkedAt });
        this.log.info(
          { jobId: task.jobId, doc, blockedBy },
          'document is blocked by a dead letter; event parked behind it',
        );
        return this.finishJob(task, {
          parked: { queue: dlqName, jobId: task.jobId, blockedBy },
        });
      }
      case 'dropped':
        return this.finishJob(task, { deadLetter: { queue: dlqName, jobId: task.jobId } });
    }
  }

  private async writeReplay(task: ReplayTask, outcome: Outcome): Promise<void> {
    const { blocks } = this.opts;
    switch (outcome.kind) {
      case 'completed':
        // Done: it leaves the dead-letter queue and its document's line.
        await task.job.remove();
        if (task.key === null) return;
        await blocks.removeParked(task.key, task.jobId);
        if (blocks.has(task.key)) await blocks.unblockIfDone(task.key);
        return;
      case 'dead-lettered': {
        const { error, attempts, failedAt } = outcome;
        const { originalQueue, originalJobId } = task.data.deadLetter;
        const info: DeadLetterInfo = {
          kind: 'dead',
          originalQueue,
          originalJobId,
          error,
          attempts,
          failedAt,
        };
        await task.job.updateData({ ...task.data, deadLetter: info });
        if (outcome.blocks !== null) {
          await blocks.removeParked(outcome.blocks, task.jobId);
          await blocks.set(outcome.blocks, { dead: task.jobId, state: 'blocked', since: failedAt });
        }
        this.logDeadLettered(task, attempts, error.message);
        return;
      }
      case 'parked':
        throw new Error(`re-run ${task.jobId} was parked: re-runs are dropped, never parked`);
      case 'dropped':
        return; // it stays in the dead-letter queue as it is
    }
  }

  private logDeadLettered(task: EventTask | ReplayTask, attempts: number, error: string): void {
    this.log.warn(
      { jobId: task.jobId, attempts, error, doc: task.key },
      'handler failed on every attempt; event moved to the dead-letter queue',
    );
  }

  /**
   * Moves an event job to completed (taken back first if its lock lapsed), fetching the next job
   * in the same call while the fetch order has room for it; then the job leaves the session.
   */
  private async finishJob(task: EventTask, returnValue: unknown): Promise<void> {
    const { intake } = this.opts;
    const { worker, token } = this.ctx;
    for (let tries = 0; ; tries++) {
      const fetchNext = intake.startFetchWithFinish(task.jobId);
      let next: Job | undefined | 'lost';
      try {
        next = await completeJob(worker, task.job, returnValue, token, fetchNext);
        break;
      } catch (error) {
        // BullMQ refused with its code: nothing moved. Otherwise the reply may be what was lost.
        if (finishErrorCode(error) === undefined) next = 'lost';
        if (finishErrorCode(error) === FINISH_JOB_GONE) {
          // An earlier try completed it (with completed jobs removed, nothing is left) and its
          // reply was lost with the connection, or an operator removed it: finished either way.
          this.log.info(
            { jobId: task.jobId, doc: task.key },
            'job was gone when its completion was tried: an earlier try whose reply was lost completed it, or it was removed',
          );
          break;
        }
        if (!isNotOwnedError(error) || tries > 0) throw error;
        ensureLease(this.ctx.lease);
        const state = await reclaim(this.ctx, task.jobId);
        if (state === 'foreign') {
          throw new StopWork(`job ${task.jobId} is locked by another process`);
        }
        if (state === 'gone') {
          this.log.warn(
            { jobId: task.jobId },
            'job vanished from the queue before it could be finished',
          );
          break;
        }
      } finally {
        if (fetchNext) intake.fetchWithFinishSettled(next);
      }
    }
    intake.release(task.jobId);
  }

  /** Adds the event to the dead-letter queue, or updates the entry a crash left there. */
  private async upsertDeadLetter(task: EventTask, deadLetter: DeadLetterInfo): Promise<void> {
    const data: DeadLetterJobData = { ...this.eventData(task), deadLetter };
    const existing = await this.opts.dlq.getJob(task.jobId);
    if (existing) {
      if (existing.data?.deadLetter?.kind !== deadLetter.kind) await existing.updateData(data);
      return;
    }
    await this.opts.dlq.add(task.job.name, data, { jobId: task.jobId });
  }

  /** The event's job data; a job stored without any is kept with an empty event. */
  private eventData(task: EventTask): EventJobData {
    return task.data ?? { v: 1, ns: '', op: '', doc: task.key, event: {} };
  }
}

/** A handler's return value as BullMQ can store it (JSON); anything else is recorded as null. */
function storableReturnValue(value: unknown): unknown {
  if (value === undefined) return null;
  try {
    JSON.stringify(value);
    return value;
  } catch {
    return null;
  }
}
