/**
 * A trickle (one job added at a time, the common case at a low write rate): the fetch loop and
 * the fetch order take each job with no read of the active list (nothing else can be ahead of a
 * job received alone) and with at most three fetches per job, as many as a bare BullMQ Worker
 * makes under a trickle (the job, then empty ones until the queue's marker blocks), not the four
 * of a batch doubled on a single job. Counted with Redis' own command statistics on a Redis of
 * this test's own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import type { Logger } from '@changeq/shared';
import type { Lease } from '@changeq/store';
import { waitFor } from '@changeq/testkit';
import { workerEvents } from '../src/hooks.js';
import type { OrderedScheduler } from '../src/scheduler/scheduler.js';
import { FetchLoop } from '../src/session/fetch-loop.js';
import { FetchOrder } from '../src/session/fetch-order.js';
import type { WorkTask } from '../src/session/tasks.js';

const JOBS = 6;

/** Calls of `command` since the last CONFIG RESETSTAT. */
async function calls(redis: Redis, command: string): Promise<number> {
  const stats = await redis.info('commandstats');
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
}

describe('the fetch loop under a trickle of jobs', () => {
  let server: RunningRedis;
  let redis: Redis;
  let blocking: Redis;
  let ordering: Redis;
  let queue: Queue;
  let worker: Worker;

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
    blocking = new Redis(server.url, { maxRetriesPerRequest: null });
    ordering = new Redis(server.url, { maxRetriesPerRequest: null });
    queue = new Queue('alpha', { connection: redis, prefix: 'changeq' });
    worker = new Worker('alpha', null, { connection: redis, prefix: 'changeq', autorun: false });
    await worker.waitUntilReady();
    await queue.waitUntilReady();
  });
  afterAll(async () => {
    await worker?.close(true);
    await queue?.close();
    blocking?.disconnect();
    ordering?.disconnect();
    await redis?.quit();
    await server?.stop();
  });

  it('takes each job without reading the active list, with at most three fetches per job', async () => {
    const submitted: string[] = [];
    const scheduler = {
      submit: (task: WorkTask) => submitted.push(task.id),
    } as unknown as OrderedScheduler<WorkTask>;
    const stop = new AbortController();
    const ctx = {
      redis,
      worker,
      token: 'owner:1',
      lease: { isValid: () => true } as unknown as Lease,
      lockDurationMs: 30_000,
      log: {
        warn: () => undefined,
        info: () => undefined,
        debug: () => undefined,
      } as unknown as Logger,
      stopSignal: stop.signal,
      events: workerEvents([], () => undefined),
    };
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
    blocking.disconnect();
    await running;
    expect(submitted).toEqual(Array.from({ length: JOBS }, (_, i) => `e:t${i}`));
    expect(lranges).toBe(0);
    expect(fetches).toBeLessThanOrEqual(3 * JOBS + 1);
  });
});
