/**
 * The fetch order reads the active list on a connection of its own, while the shared one goes
 * on fetching and finishing jobs. Here the read's reply is held back (after Redis ran it) while
 * a job is finished and another one fetched: the finished job, still in the list read, is no
 * lost reply to adopt, and the job fetched meanwhile, not yet in it, is not taken for gone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import type { Logger } from '@changeq/shared';
import type { Lease } from '@changeq/store';
import { waitFor } from '@changeq/testkit';
import { workerEvents } from '../src/hooks.js';
import type { OrderedScheduler } from '../src/scheduler/scheduler.js';
import { FetchOrder } from '../src/session/fetch-order.js';
import type { WorkTask } from '../src/session/tasks.js';

describe('fetch order, reading the active list on its own connection', () => {
  let server: RunningRedis;
  let redis: Redis;
  let ordering: Redis;
  let queue: Queue;
  let worker: Worker;

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
    ordering = new Redis(server.url, { maxRetriesPerRequest: null });
    queue = new Queue('alpha', { connection: redis, prefix: 'changeq' });
    worker = new Worker('alpha', null, { connection: redis, prefix: 'changeq', autorun: false });
    await worker.waitUntilReady();
  });
  afterAll(async () => {
    await worker?.close(true);
    await queue?.close();
    ordering?.disconnect();
    await redis?.quit();
    await server?.stop();
  });

  it('skips a job finished during the read and keeps one fetched during it', async () => {
    const token = 'owner:1';
    for (const id of ['x', 'y', 'z', 'w']) {
      await queue.add('update', { v: 1, ns: 'db.c', op: 'update', doc: `d-${id}` }, { jobId: id });
    }
    const warnings: string[] = [];
    const log = {
      warn: (_fields: unknown, message: string) => warnings.push(message),
      info: () => undefined,
      debug: () => undefined,
      error: () => undefined,
    } as unknown as Logger;
    const submitted: string[] = [];
    const scheduler = {
      submit: (task: WorkTask) => submitted.push(task.id),
    } as unknown as OrderedScheduler<WorkTask>;
    const ctx = {
      redis,
      worker,
      token,
      lease: { isValid: () => true } as unknown as Lease,
      lockDurationMs: 30_000,
      log,
      stopSignal: new AbortController().signal,
      events: workerEvents([], () => undefined),
    };
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
