/**
 * Pins the BullMQ internals listed in src/bullmq-internals.ts against the installed BullMQ: if an
 * upgrade changes one of them, this file fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import {
  FINISH_LOCK_MISMATCH,
  FINISH_MISSING_LOCK,
  activeJobsInFetchOrder,
  finishErrorCode,
  lockKey,
  reclaimJob,
  takeOverJobs,
} from '../src/bullmq-internals.js';
import { waitFor } from '@changeq/testkit';

describe('BullMQ internals this worker relies on', () => {
  let server: RunningRedis;
  let redis: Redis;
  let n = 0;

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });

  async function setup(jobs: number, workerOpts: Record<string, unknown> = {}) {
    const name = `q${++n}`;
    const queue = new Queue(name, { connection: redis, prefix: 'changeq' });
    await queue.addBulk(
      Array.from({ length: jobs }, (_, i) => ({
        name: 'e',
        data: { i },
        opts: { jobId: `j${i}` },
      })),
    );
    const worker = new Worker(name, null, {
      connection: redis,
      prefix: 'changeq',
      autorun: false,
      skipLockRenewal: true,
      ...workerOpts,
    });
    await worker.waitUntilReady();
    const close = async () => {
      await worker.close(true);
      await queue.close();
    };
    return { name, queue, worker, close };
  }

  it('a job lock is <queue key prefix><id>:lock holding the getNextJob token', async () => {
    const { worker, close } = await setup(1);
    const job = await worker.getNextJob('token-A', { block: false });
    expect(job?.id).toBe('j0');
    expect(lockKey(worker, 'j0')).toBe(`changeq:${worker.name}:j0:lock`);
    expect(await redis.get(lockKey(worker, 'j0'))).toBe('token-A');
    await close();
  });

  it('the active list read from its end is the fetch order', async () => {
    const { worker, close } = await setup(4);
    for (let i = 0; i < 4; i++) await worker.getNextJob('t', { block: false });
    const job1 = await worker.getNextJob('t', { block: false });
    expect(job1).toBeUndefined();
    // Finishing one in the middle keeps the others' order.
    const { Job } = await import('bullmq');
    await (await Job.fromId(worker, 'j1'))!.moveToCompleted('ok', 't', false);
    expect(await activeJobsInFetchOrder(redis, worker)).toEqual(['j0', 'j2', 'j3']);
    await close();
  });

  it('taking a lock over lets the new token finish the job and refuses the old one', async () => {
    const { worker, close } = await setup(2);
    const a = (await worker.getNextJob('old', { block: false }))!;
    const b = (await worker.getNextJob('old', { block: false }))!;
    expect(await takeOverJobs(redis, worker, ['j0', 'j1', 'not-active'], 'new', 30_000)).toEqual([
      'j0',
      'j1',
    ]);
    let code: number | undefined;
    await a.moveToCompleted('x', 'old', false).catch((e: unknown) => (code = finishErrorCode(e)));
    expect(code).toBe(FINISH_LOCK_MISMATCH);
    await a.moveToCompleted('x', 'new', false);
    expect(await a.getState()).toBe('completed');
    // A missing lock is reported as such.
    await redis.del(lockKey(worker, 'j1'));
    await b.moveToCompleted('x', 'new', false).catch((e: unknown) => (code = finishErrorCode(e)));
    expect(code).toBe(FINISH_MISSING_LOCK);
    await close();
  });

  it('the stalled checker re-queues only lock-less active jobs, at the head of wait, never failing them with a huge maxStalledCount', async () => {
    const { worker, queue, close } = await setup(3, {
      stalledInterval: 100,
      maxStalledCount: Number.MAX_SAFE_INTEGER,
    });
    await worker.getNextJob('t', { block: false }); // j0
    await worker.getNextJob('t', { block: false }); // j1
    await takeOverJobs(redis, worker, ['j1'], 't', 60_000);
    await redis.del(lockKey(worker, 'j0')); // j0's process died and its lock expired
    await worker.startStalledCheckTimer();
    await waitFor(
      async () => (await queue.getJobState('j0')) === 'waiting',
      async () => `j0 is ${await queue.getJobState('j0')}`,
      5_000,
    );
    expect(await queue.getJobState('j1')).toBe('active');
    // RPUSH onto wait: j0 is fetched before j2, which was waiting all along.
    const next = await worker.getNextJob('t2', { block: false });
    expect(next?.id).toBe('j0');
    expect(await redis.hget(`changeq:${worker.name}:j0`, 'stc')).toBe('1');
    expect(await redis.hget(`changeq:${worker.name}:j0`, 'defa')).toBeNull();
    await close();
  });

  it('reclaimJob takes back a held job that was put back in wait, or relocks it in active', async () => {
    const { worker, queue, close } = await setup(2);
    await worker.getNextJob('mine', { block: false }); // j0
    await redis.del(lockKey(worker, 'j0'));
    expect(await reclaimJob(redis, worker, 'j0', 'mine', 30_000)).toBe('active');
    expect(await redis.get(lockKey(worker, 'j0'))).toBe('mine');
    // Simulate the stalled checker's move back to wait.
    await redis.lrem(`changeq:${worker.name}:active`, 1, 'j0');
    await redis.rpush(`changeq:${worker.name}:wait`, 'j0');
    expect(await reclaimJob(redis, worker, 'j0', 'mine', 30_000)).toBe('moved-back');
    expect(await queue.getJobState('j0')).toBe('active');
    expect(await reclaimJob(redis, worker, 'nope', 'mine', 30_000)).toBe('gone');
    // Never steals a lock another process holds.
    await redis.set(lockKey(worker, 'j0'), 'theirs');
    expect(await reclaimJob(redis, worker, 'j0', 'mine', 30_000)).toBe('foreign');
    expect(await redis.get(lockKey(worker, 'j0'))).toBe('theirs');
    await close();
  });
});
