/**
 * A document's re-run line, once an operator asked to retry or discard its dead letter (see
 * commands.ts): when the line is next, it becomes the dead letter (on retry) and the events
 * parked behind it, in their order, read from the dead-letter queue.
 */
import type { Queue } from 'bullmq';
import type { Logger } from '@changeq/shared';
import type { DocumentBlocks, Lease } from '@changeq/store';
import { ensureLease } from './context.js';
import { replayTask, type ReplayTask, type WorkTask } from './tasks.js';

export interface ReplayLinesOptions {
  dlq: Queue;
  blocks: DocumentBlocks;
  lease: Lease;
  log: Logger;
}

export class ReplayLines {
  private readonly opts: ReplayLinesOptions;

  constructor(opts: ReplayLinesOptions) {
    this.opts = opts;
  }

  /**
   * A re-run line next in line: its re-runs (none while the document is blocked again, and the
   * document is unblocked when nothing is left to run); null for any other task.
   */
  async expand(task: WorkTask): Promise<ReplayTask[] | null> {
    if (task.kind !== 'replay-line') return null;
    const { dlq, blocks, lease, log } = this.opts;
    ensureLease(lease);
    const doc = task.key;
    const block = blocks.get(doc);
    if (block === undefined || block.state === 'blocked') return [];
    if (block.state === 'discard') {
      const dead = await dlq.getJob(block.dead);
      if (dead) await dead.remove();
      log.info({ doc, jobId: block.dead }, 'dead letter discarded');
    }
    const parked = await blocks.parkedIds(doc);
    const ids =
      block.state === 'retry' ? [block.dead, ...parked.filter((id) => id !== block.dead)] : parked;
    const jobs = await Promise.all(ids.map((id) => dlq.getJob(id)));
    const tasks: ReplayTask[] = [];
    for (const job of jobs) {
      if (job?.id === undefined) continue;
      tasks.push(replayTask(job, job.id, doc));
    }
    if (tasks.length === 0) await blocks.unblockIfDone(doc);
    else
      log.info(
        { doc, events: tasks.length },
        `re-running ${block.state === 'retry' ? 'the dead letter and ' : ''}the events parked behind it`,
      );
    return tasks;
  }
}
