/**
 * The dead-letter policy (`dead_letter = "block"` or `"skip"`), as decisions: whether a task next
 * in line runs, is parked behind its document's dead letter, or is dropped; and what to write for
 * a task that failed every attempt, or that is parked. It reads the blocked documents as this
 * process mirrors them and writes nothing: the outcome writer persists what it decides.
 */
import type { WorkerSettings } from '@changeq/shared';
import type { DocumentBlocks } from '@changeq/store';
import type { HandlerFailure } from '../scheduler/invoke.js';
import type { Admission } from '../scheduler/scheduler.js';
import type { Outcome } from './outcomes.js';
import type { WorkTask } from './tasks.js';

export class DeadLetterPolicy {
  private readonly policy: WorkerSettings['deadLetter'];
  private readonly blocks: Pick<DocumentBlocks, 'get' | 'has'>;

  constructor(policy: WorkerSettings['deadLetter'], blocks: Pick<DocumentBlocks, 'get' | 'has'>) {
    this.policy = policy;
    this.blocks = blocks;
  }

  /** Whether a task next in line runs, waits behind its document's dead letter, or is dropped. */
  admit(task: WorkTask): Admission {
    // A re-run line is expanded into its re-runs before it is admitted.
    if (task.key === null || task.kind === 'replay-line') return 'run';
    const block = this.blocks.get(task.key);
    if (task.kind === 'replay') return block?.state === 'blocked' ? 'drop' : 'run';
    if (block === undefined || this.policy === 'skip') return 'run';
    // Our own dead letter: the process died after recording it, before finishing the job.
    if (block.dead === task.jobId) return 'drop';
    return 'park';
  }

  /**
   * The last attempt failed. An event blocks its document under "block"; a re-run blocks it
   * again whenever its document is still under a block (retry or discard under way).
   */
  deadLettered(task: WorkTask, failure: HandlerFailure, attempts: number): Outcome {
    const doc = task.key;
    const blocking =
      doc !== null && (task.kind === 'event' ? this.policy === 'block' : this.blocks.has(doc));
    return {
      kind: 'dead-lettered',
      error:
        failure.stack === undefined
          ? { message: failure.message }
          : { message: failure.message, stack: failure.stack },
      attempts,
      failedAt: new Date().toISOString(),
      blocks: blocking ? doc : null,
    };
  }

  /** A task admitted as 'park': it waits behind the dead letter that blocks its document. */
  parked(task: WorkTask): Outcome {
    const block = task.key === null ? undefined : this.blocks.get(task.key);
    if (task.key === null || block === undefined) {
      throw new Error(`task ${task.id} was parked, but its document is not blocked`);
    }
    return {
      kind: 'parked',
      doc: task.key,
      blockedBy: block.dead,
      parkedAt: new Date().toISOString(),
    };
  }
}
