/**
 * Crash recovery: what a new term takes over from the previous process for this worker name
 * (dead, or stopped without finishing everything), submitted before anything is fetched.
 */
import { Job } from 'bullmq';
import { type DocumentBlocks, activeJobsInFetchOrder, takeOverJobs } from '@changeq/store';
import type { OrderedScheduler } from '../scheduler/scheduler.js';
import type { SessionContext } from './context.js';
import type { FetchOrder } from './fetch-order.js';
import { replayLineTask, type WorkTask } from './tasks.js';

export async function recover(
  ctx: SessionContext,
  blocks: DocumentBlocks,
  scheduler: OrderedScheduler<WorkTask>,
  order: FetchOrder,
): Promise<void> {
  // Dead-letter re-runs that were under way go first: their events are older than any
  // event of the same document still in the queue.
  for (const [doc, state] of blocks.entries()) {
    if (state.state !== 'blocked') scheduler.submit(replayLineTask(doc));
  }
  // The jobs left in the active list, taken over (our token written into their locks, see
  // @changeq/store's bullmq-internals.ts) and submitted in their original fetch order.
  const { redis, worker, token, lockDurationMs } = ctx;
  const ids = await activeJobsInFetchOrder(redis, worker);
  if (ids.length === 0) return;
  const taken = await takeOverJobs(redis, worker, ids, token, lockDurationMs);
  const jobs = await Promise.all(taken.map((id) => Job.fromId(worker, id)));
  let recovered = 0;
  for (const job of jobs) {
    if (job === undefined) continue;
    order.accept(job);
    recovered++;
  }
  ctx.log.info(
    { recovered },
    `recovered ${recovered} job(s) left active by the previous process; running them first, in their original order`,
  );
}
