/**
 * Operator commands: retries and discards of dead letters (see @changeq/store's dead-letters.ts) are appended to
 * the list `workerKeys().commands` by any process; the active one polls it and carries them out
 * in order, removing each command once it is done.
 */
import type { Queue } from 'bullmq';
import { sleep } from '@changeq/shared';
import { decodeCommand, type DeadLetterJobData, type DocumentBlocks } from '@changeq/store';
import type { OrderedScheduler } from '../scheduler/scheduler.js';
import { redisFailed, type SessionContext } from './context.js';
import { replayLineTask, replayTask, type WorkTask } from './tasks.js';

export interface CommandsOptions {
  /** The list `workerKeys().commands`. */
  key: string;
  pollMs: number;
  dlq: Queue;
  blocks: DocumentBlocks;
  scheduler: OrderedScheduler<WorkTask>;
}

export class OperatorCommands {
  private readonly ctx: SessionContext;
  private readonly opts: CommandsOptions;

  constructor(ctx: SessionContext, opts: CommandsOptions) {
    this.ctx = ctx;
    this.opts = opts;
  }

  private get running(): boolean {
    return !this.ctx.stopSignal.aborted;
  }

  async run(): Promise<void> {
    const { redis, lease } = this.ctx;
    while (this.running) {
      if (lease.isValid()) {
        try {
          for (;;) {
            if (!this.running || !lease.isValid()) break;
            const raw = await redis.lindex(this.opts.key, 0);
            if (raw === null) break;
            await this.apply(raw);
            await redis.lpop(this.opts.key);
          }
        } catch (error) {
          redisFailed(this.ctx, 'commands', error, 'reading dead-letter commands failed; retrying');
        }
      }
      await sleep(this.opts.pollMs, this.ctx.stopSignal);
    }
  }

  private async apply(raw: string): Promise<void> {
    const { log } = this.ctx;
    const { dlq, blocks, scheduler } = this.opts;
    const command = decodeCommand(raw);
    if (command === undefined) {
      log.warn({ command: raw }, 'ignored an unreadable dead-letter command');
      return;
    }
    const job = await dlq.getJob(command.jobId);
    if (job?.id === undefined) {
      log.warn({ jobId: command.jobId, op: command.op }, 'no such dead letter (already handled?)');
      return;
    }
    const data = job.data as DeadLetterJobData;
    const doc = data.doc;
    const block = doc === null ? undefined : blocks.get(doc);
    if (doc !== null && block !== undefined && block.dead === command.jobId) {
      if (block.state !== 'blocked') return; // a re-run of this document is already under way
      if (command.op === 'retry') await job.updateProgress(0);
      await blocks.set(doc, { ...block, state: command.op });
      log.info(
        { jobId: command.jobId, doc, op: command.op },
        `dead letter ${command.op} requested`,
      );
      scheduler.submitFront(replayLineTask(doc));
      return;
    }
    if (data.deadLetter?.kind === 'parked') {
      if (command.op === 'discard') {
        if (doc !== null) await blocks.removeParked(doc, command.jobId);
        await job.remove();
        log.info({ jobId: command.jobId, doc }, 'parked event discarded');
      } else {
        log.warn(
          { jobId: command.jobId },
          'a parked event runs when its dead letter is retried; ignored',
        );
      }
      return;
    }
    // A dead letter that blocks nothing (dead_letter = "skip", or a namespace-wide event).
    if (command.op === 'discard') {
      await job.remove();
      log.info({ jobId: command.jobId, doc }, 'dead letter discarded');
      return;
    }
    await job.updateProgress(0);
    log.info({ jobId: command.jobId, doc }, 'dead letter retry requested');
    scheduler.submit(replayTask((await dlq.getJob(command.jobId)) ?? job, command.jobId, doc));
  }
}
