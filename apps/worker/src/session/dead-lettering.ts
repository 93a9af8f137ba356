/**
 * Dead letters as the scheduler's driver sees them: the block/skip policy (whether a task runs,
 * is parked behind its document's dead letter, or is dropped), recording dead letters and parked
 * events in the dead-letter queue, and expanding a document's re-run line once an operator asked
 * for a retry or discard (see commands.ts).
 */
import type { Queue } from 'bullmq';
import type { EventJobData, Logger, WorkerSettings } from '@changeq/shared';
import type { Lease, DocumentBlocks, DeadLetterInfo, DeadLetterJobData } from '@changeq/store';
import type { HandlerFailure } from '../scheduler/invoke.js';
import type { Admission } from '../scheduler/scheduler.js';
import { ensureLease } from './context.js';
import type { FetchOrder } from './fetch-order.js';
import { replayTask, type WorkTask } from './tasks.js';

export interface DeadLetteringOptions {
  /** The worker's event queue. */
  queueName: string;
  /** Its dead-letter queue, `<worker>.dead`. */
  dlqName: string;
  dlq: Queue;
  policy: WorkerSettings['deadLetter'];
  blocks: DocumentBlocks;
  /** Finishes event jobs. */
  order: FetchOrder;
  lease: Lease;
  log: Logger;
}

export class DeadLettering {
  private readonly opts: DeadLetteringOptions;
  private readonly log: Logger;

  constructor(opts: DeadLetteringOptions) {
    this.opts = opts;
    this.log = opts.log;
  }

  /** The block/skip policy, for a task next in line. */
  admit(task: WorkTask): Admission {
    if (task.key === null) return 'run';
    const block = this.opts.blocks.get(task.key);
    if (task.kind === 'replay') return block?.state === 'blocked' ? 'drop' : 'run';
    if (block === undefined || this.opts.policy === 'skip') return 'run';
    // Our own dead letter: the process died after recording it, before finishing the job.
    if (block.dead === task.jobId) return 'drop';
    return 'park';
  }

  /**
   * A document's re-run line, next in line: the dead letter (on retry) and the events parked
   * behind it, in their order; nothing while the document is blocked again.
   */
  async expand(task: WorkTask): Promise<WorkTask[] | null> {
    if (task.kind !== 'replay-line' || task.key === null) return null;
    ensureLease(this.opts.lease);
    const doc = task.key;
    const block = this.opts.blocks.get(doc);
    if (block === undefined || block.state === 'blocked') return [];
    if (block.state === 'discard') {
      const dead = await this.opts.dlq.getJob(block.dead);
      if (dead) await dead.remove();
      this.log.info({ doc, jobId: block.dead }, 'dead letter discarded');
    }
    const parked = await this.opts.blocks.parkedIds(doc);
    const ids =
      block.state === 'retry' ? [block.dead, ...parked.filter((id) => id !== block.dead)] : parked;
    const jobs = await Promise.all(ids.map((id) => this.opts.dlq.getJob(id)));
    const tasks: WorkTask[] = [];
    for (const job of jobs) {
      if (job?.id === undefined) continue;
      tasks.push(replayTask(job, doc));
    }
    if (tasks.length === 0) await this.opts.blocks.unblockIfDone(doc);
    else
      this.log.info(
        { doc, events: tasks.length },
        `re-running ${block.state === 'retry' ? 'the dead letter and ' : ''}the events parked behind it`,
      );
    return tasks;
  }

  async deadLetter(task: WorkTask, failure: HandlerFailure, attempts: number): Promise<void> {
    ensureLease(this.opts.lease);
    const { blocks } = this.opts;
    const now = new Date().toISOString();
    const error =
      failure.stack === undefined
        ? { message: failure.message }
        : { message: failure.message, stack: failure.stack };
    this.log.warn(
      { jobId: task.jobId, attempts, error: failure.message, doc: task.key },
      'handler failed on every attempt; event moved to the dead-letter queue',
    );
    if (task.kind === 'replay') {
      const job = task.job!;
      const data = job.data as DeadLetterJobData;
      const info: DeadLetterInfo = {
        kind: 'dead',
        originalQueue: data.deadLetter.originalQueue,
        originalJobId: data.deadLetter.originalJobId,
        error,
        attempts,
        failedAt: now,
      };
      await job.updateData({ ...data, deadLetter: info });
      if (task.key !== null && blocks.has(task.key)) {
        await blocks.removeParked(task.key, task.jobId);
        await blocks.set(task.key, { dead: task.jobId, state: 'blocked', since: now });
      }
      return;
    }
    const data = task.data ?? ({ v: 1, ns: '', op: '', doc: task.key, event: {} } as EventJobData);
    await this.upsertDeadLetter(task, {
      ...data,
      deadLetter: {
        kind: 'dead',
        originalQueue: this.opts.queueName,
        originalJobId: task.jobId,
        error,
        attempts,
        failedAt: now,
      },
    });
    if (this.opts.policy === 'block' && task.key !== null) {
      await blocks.set(task.key, { dead: task.jobId, state: 'blocked', since: now });
    }
    await this.opts.order.finish(task, {
      deadLetter: { queue: this.opts.dlqName, jobId: task.jobId },
    });
  }

  async park(task: WorkTask): Promise<void> {
    ensureLease(this.opts.lease);
    const doc = task.key!;
    const block = this.opts.blocks.get(doc)!;
    const seq = await this.opts.blocks.addParked(doc, task.jobId);
    const data = task.data ?? ({ v: 1, ns: '', op: '', doc, event: {} } as EventJobData);
    await this.upsertDeadLetter(task, {
      ...data,
      deadLetter: {
        kind: 'parked',
        originalQueue: this.opts.queueName,
        originalJobId: task.jobId,
        blockedBy: block.dead,
        seq,
        parkedAt: new Date().toISOString(),
      },
    });
    this.log.info(
      { jobId: task.jobId, doc, blockedBy: block.dead },
      'document is blocked by a dead letter; event parked behind it',
    );
    await this.opts.order.finish(task, {
      parked: { queue: this.opts.dlqName, jobId: task.jobId, blockedBy: block.dead },
    });
  }

  async drop(task: WorkTask): Promise<void> {
    if (task.kind === 'event') {
      ensureLease(this.opts.lease);
      await this.opts.order.finish(task, {
        deadLetter: { queue: this.opts.dlqName, jobId: task.jobId },
      });
    }
  }

  /** A re-run from the dead-letter queue succeeded: it leaves the queue and its document's line. */
  async finishReplay(task: WorkTask): Promise<void> {
    const { blocks } = this.opts;
    await task.job!.remove();
    if (task.key === null) return;
    await blocks.removeParked(task.key, task.jobId);
    if (blocks.has(task.key)) await blocks.unblockIfDone(task.key);
  }

  private async upsertDeadLetter(task: WorkTask, data: DeadLetterJobData): Promise<void> {
    const existing = await this.opts.dlq.getJob(task.jobId);
    if (existing) {
      if (existing.data?.deadLetter?.kind !== data.deadLetter.kind) await existing.updateData(data);
      return;
    }
    await this.opts.dlq.add(task.job?.name ?? 'event', data, { jobId: task.jobId });
  }
}
