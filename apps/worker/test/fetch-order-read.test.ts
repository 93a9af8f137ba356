/**
 * The fetch order reads the active list on a connection of its own, while the shared one goes
 * on fetching and finishing jobs. Here the read's reply is held back (after Redis ran it) while
 * a job is finished and another one fetched: the finished job, still in the list read, is no
 * lost reply to adopt, and the job fetched meanwhile, not yet in it, is not taken for gone.
 */
import { describe, expect, it } from 'vitest';
import type { Job } from 'bullmq';
import { waitFor } from '@changeq/testkit';
import { FetchOrder } from '../src/session/fetch-order.js';
import { fetchingForFile, recordingSession } from './helpers/fetching.js';

describe('fetch order, reading the active list on its own connection', () => {
  const fetching = fetchingForFile();

  it('skips a job finished during the read and keeps one fetched during it', async () => {
    const { queue, worker, ordering } = fetching;
    const { ctx, scheduler, submitted, warnings } = recordingSession(fetching);
    const token = ctx.token;
    for (const id of ['x', 'y', 'z', 'w']) {
      await queue.add('update', { v: 1, ns: 'db.c', op: 'update', doc: `d-${id}` }, { jobId: id });
    }
    const order = new FetchOrder(ctx, scheduler, 16, ordering);
    const fetch = async (): Promise<Job> => {
      order.fetchesStarted(1);
      const job = await worker.getNextJob(token, { block: false });
      if (job === undefined) throw new Error('the queue ran dry');
      order.arrive(job);
      order.fetchesSettled(1);
      return job;
    };

    // x alone: taken without a read.
    const x = await fetch();
    order.requestDrain();
    await waitFor(
      () => submitted.length === 1,
      () => `x taken (${submitted.join()})`,
      5_000,
    );

    // y and z: their order is read, and the read's reply waits until released.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let reads = 0;
    const lrange = ordering.lrange.bind(ordering) as (...args: unknown[]) => Promise<string[]>;
    ordering.lrange = (async (...args: unknown[]) => {
      const ids = await lrange(...args);
      if (reads++ === 0) await held;
      return ids;
    }) as typeof ordering.lrange;
    await fetch();
    await fetch();
    order.requestDrain();
    await waitFor(() => reads === 1, 'the read of the list', 5_000);
    // Meanwhile x is finished and w fetched, on the shared connection.
    await x.moveToCompleted(null, token, false);
    order.release('x');
    await fetch();
    order.requestDrain();
    release();

    await waitFor(
      () => submitted.length === 4,
      () => `x, y, z and w taken (${submitted.join()}; warned: ${warnings.join('; ')})`,
      5_000,
    );
    expect(submitted).toEqual(['e:x', 'e:y', 'e:z', 'e:w']);
    expect(warnings).toEqual([]);
  });
});
