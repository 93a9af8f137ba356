/**
 * The fetch order takes its order from the replies (@changeq/store's `watchMovesToActive`):
 * jobs handed over in any order are accepted in the order Redis moved them, without a read of
 * the active list. When the replies cannot tell (a job that no reply reported, a reported job
 * whose call failed), the active list does, and the replies take over again after it.
 */
import { describe, expect, it } from 'vitest';
import type { Job } from 'bullmq';
import { waitFor } from '@changeq/testkit';
import { watchMovesToActive } from '@changeq/store';
import { FetchOrder } from '../src/session/fetch-order.js';
import { fetchingForFile, recordingSession, type Fetching } from './helpers/fetching.js';

/** The token recordingSession's context locks jobs with. */
const TOKEN = 'owner:1';

describe('fetch order from the replies', () => {
  const fetching = fetchingForFile();

  /** A fetch order that follows the replies, and a count of its reads of the active list. */
  function replyOrder() {
    const session = recordingSession(fetching);
    if (session.ctx.token !== TOKEN) throw new Error('the session locks jobs with another token');
    const order = new FetchOrder(session.ctx, session.scheduler, 64, fetching.ordering);
    const unwatch = watch(order);
    order.followReplies();
    const reads = countListReads(fetching);
    return { ...session, order, unwatch, reads };
  }

  /** Reports the jobs the file's worker moves to active to `order`, as a session does. */
  function watch(order: FetchOrder): () => void {
    const unwatch = watchMovesToActive(fetching.redis, fetching.worker, (id) =>
      order.movedToActive(id),
    );
    if (unwatch === undefined) throw new Error('a single Redis must be watched');
    return unwatch;
  }

  async function add(ids: string[]): Promise<void> {
    for (const id of ids) {
      await fetching.queue.add(
        'update',
        { v: 1, ns: 'db.c', op: 'update', doc: `d-${id}` },
        {
          jobId: id,
        },
      );
    }
  }

  /** Fetches `count` jobs at once; the jobs, in the order Redis moved them (their ids' order). */
  async function fetchAll(order: FetchOrder, count: number): Promise<Job[]> {
    const token = TOKEN;
    order.fetchesStarted(count);
    const jobs = await Promise.all(
      Array.from({ length: count }, () => fetching.worker.getNextJob(token, { block: false })),
    );
    return jobs.map((job) => {
      if (job === undefined) throw new Error('the queue ran dry');
      return job;
    });
  }

  it('accepts jobs handed over in reverse in the order Redis moved them, reading no list', async () => {
    const { order, submitted, reads, unwatch } = replyOrder();
    try {
      await add(['a1', 'a2', 'a3', 'a4']);
      const jobs = await fetchAll(order, 4);
      // Handed over last first, each followed by a drain: none may go before its predecessors.
      for (const job of [...jobs].reverse()) {
        order.arrive(job);
        order.requestDrain();
        if (job.id !== 'a1') expect(submitted).toEqual([]);
      }
      order.fetchesSettled(4);
      order.requestDrain();
      expect(submitted).toEqual(['e:a1', 'e:a2', 'e:a3', 'e:a4']);
      expect(reads.count).toBe(0);
      for (const job of jobs) await finish(order, job);
    } finally {
      unwatch();
      reads.restore();
    }
  });

  it('a job no reply reported is placed by the active list', async () => {
    const { order, submitted, reads, unwatch, warnings } = replyOrder();
    try {
      await add(['b1', 'b2']);
      unwatch(); // b1's reply goes unseen
      const [b1] = await fetchAll(order, 1);
      const rewatch = watch(order);
      const [b2] = await fetchAll(order, 1);
      order.arrive(b2!);
      order.arrive(b1!);
      order.fetchesSettled(2);
      order.requestDrain();
      await waitFor(
        () => submitted.length === 2,
        () => `b1 and b2 taken (${submitted.join()})`,
        5_000,
      );
      expect(submitted).toEqual(['e:b1', 'e:b2']);
      expect(reads.count).toBeGreaterThan(0);
      expect(warnings).toEqual([
        'a fetched job came without its reply reported; ordering by the active list',
      ]);
      for (const job of [b1!, b2!]) await finish(order, job);
      rewatch();
    } finally {
      reads.restore();
    }
  });

  it('a reported job whose call failed is adopted from the list, then the replies order again', async () => {
    const { order, submitted, reads, unwatch } = replyOrder();
    try {
      await add(['c1', 'c2', 'c3']);
      // c1 moved and reported, but its call failed before BullMQ handed it over.
      await fetchAll(order, 1);
      order.fetchesSettled(1);
      order.repliesMayBeLost();
      order.requestDrain();
      await waitFor(
        () => submitted.length === 1,
        () => `c1 adopted (${submitted.join()})`,
        5_000,
      );
      expect(submitted).toEqual(['e:c1']);
      const readsForAdoption = reads.count;
      expect(readsForAdoption).toBeGreaterThan(0);
      // After the adoption the replies order again: c2 and c3 handed over in reverse.
      const [c2, c3] = await fetchAll(order, 2);
      order.arrive(c3!);
      order.requestDrain();
      order.arrive(c2!);
      order.fetchesSettled(2);
      order.requestDrain();
      expect(submitted).toEqual(['e:c1', 'e:c2', 'e:c3']);
      expect(reads.count).toBe(readsForAdoption);
    } finally {
      unwatch();
      reads.restore();
    }
  });

  /** Completes a job as the outcome writer would (without fetching), and releases it. */
  async function finish(order: FetchOrder, job: Job): Promise<void> {
    await job.moveToCompleted(null, TOKEN, false);
    order.release(job.id!);
  }
});

/** Counts the reads of the active list on the fetch order's own connection. */
function countListReads(fetching: Fetching): { count: number; restore: () => void } {
  const { ordering } = fetching;
  const lrange = ordering.lrange;
  const reads = {
    count: 0,
    restore: () => {
      ordering.lrange = lrange;
    },
  };
  ordering.lrange = ((...args: Parameters<typeof lrange>) => {
    reads.count++;
    return (lrange as (...a: unknown[]) => unknown).apply(ordering, args);
  }) as typeof lrange;
  return reads;
}
