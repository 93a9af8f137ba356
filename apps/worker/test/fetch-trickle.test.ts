/**
 * A trickle (one job added at a time, the common case at a low write rate): the fetch loop and
 * the fetch order take each job with no read of the active list (nothing else can be ahead of a
 * job received alone) and with two fetches per job: the job, then one that finds the queue empty
 * before the marker wait blocks. A bare BullMQ Worker makes three (it fetches again at once after
 * a job, and again after the marker its own fetch left); a batch doubled on a single job makes
 * four. Counted with Redis' own command statistics on a Redis of this test's own.
 */
import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { waitFor } from '@changeq/testkit';
import { FetchLoop } from '../src/session/fetch-loop.js';
import { FetchOrder } from '../src/session/fetch-order.js';
import { fetchingForFile, recordingSession } from './helpers/fetching.js';

const JOBS = 6;

/** Calls of `command` since the last CONFIG RESETSTAT. */
async function calls(redis: Redis, command: string): Promise<number> {
  const stats = await redis.info('commandstats');
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
}

describe('the fetch loop under a trickle of jobs', () => {
  const fetching = fetchingForFile();

  it('takes each job without reading the active list, with two fetches per job', async () => {
    const { redis, queue, ordering, blocking } = fetching;
    const stop = new AbortController();
    const { ctx, scheduler, submitted } = recordingSession(fetching, stop.signal);
    const order = new FetchOrder(ctx, scheduler, 16, ordering);
    const loop = new FetchLoop(ctx, order, blocking);
    await redis.config('RESETSTAT');
    const running = loop.run();
    for (let i = 0; i < JOBS; i++) {
      await queue.add(
        'update',
        { v: 1, ns: 'db.c', op: 'update', doc: `d-${i}` },
        { jobId: `t${i}` },
      );
      await waitFor(() => submitted.length === i + 1, `job t${i} taken`, 5_000);
    }
    const lranges = await calls(redis, 'lrange');
    // evalsha: the adds (one each) and the fetches (moveToActive); one more fetch at the start.
    const fetches = (await calls(redis, 'evalsha')) - JOBS;
    stop.abort();
    blocking.disconnect(); // ends the marker wait at once
    await running;
    expect(submitted).toEqual(Array.from({ length: JOBS }, (_, i) => `e:t${i}`));
    expect(lranges).toBe(0);
    expect(fetches).toBeLessThanOrEqual(2 * JOBS + 1);
  });
});
