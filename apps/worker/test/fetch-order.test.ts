/**
 * The worker must not trust the order in which fetched jobs reach it. Here every reply of
 * `getNextJob` and of `moveToCompleted` (which fetches the next job too) is delayed at random
 * after Redis has executed the command, so jobs arrive out of queue order; per document, the
 * handler must still see the events in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { createLogger, type ChangeEvent } from '@changeq/shared';
import { startWorker } from '../src/runner.js';
import { join } from 'node:path';
import { enqueue, enqueueUpdates } from './helpers/events.js';
import { samples, scrape, total } from './helpers/metrics.js';
import { APP_DIR, startWorkerProcess } from './helpers/process.js';
import { freePort, waitFor, workersFile } from '@changeq/testkit';
import { buildScenario, seeded } from './helpers/scenario.js';

describe('fetch order', () => {
  let server: RunningRedis;
  let redis: Redis;
  const restore: (() => void)[] = [];

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
    const random = seeded(77);
    const delay = () => new Promise((r) => setTimeout(r, Math.floor(random() * 4)));
    const getNextJob = Worker.prototype.getNextJob;
    Worker.prototype.getNextJob = async function (this: Worker, ...args) {
      const job = await getNextJob.apply(this, args);
      await delay();
      return job;
    };
    const moveToCompleted = Job.prototype.moveToCompleted;
    Job.prototype.moveToCompleted = async function (this: Job, ...args) {
      const next = await moveToCompleted.apply(this, args);
      await delay();
      return next;
    };
    restore.push(() => {
      Worker.prototype.getNextJob = getNextJob;
      Job.prototype.moveToCompleted = moveToCompleted;
    });
  });
  afterAll(async () => {
    for (const undo of restore) undo();
    await redis?.quit();
    await server?.stop();
  });

  it('runs each document in queue order although replies arrive shuffled', async () => {
    const scenario = buildScenario(20, 60, seeded(3));
    await enqueue(redis, scenario.events, () => 'alpha');
    // Every read of a list in this process (the fetch order reads the active list with LRANGE).
    let listReads = 0;
    const lrange = Redis.prototype.lrange;
    Redis.prototype.lrange = function (this: Redis, ...args: unknown[]) {
      listReads++;
      return (lrange as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof lrange;
    restore.push(() => (Redis.prototype.lrange = lrange));
    const seen = new Map<string, number[]>();
    const worker = await startWorker({
      worker: 'alpha',
      redisUrl: server.url,
      settings: {
        concurrency: 8,
        attempts: 1,
        backoffMs: 10,
        maxBackoffMs: 10,
        timeoutMs: 5_000,
        deadLetter: 'block',
      },
      dispatch: (event: ChangeEvent) => {
        const e = event as {
          fullDocument?: { doc: string; n: number };
          updateDescription?: { updatedFields: { doc: string; n: number } };
        };
        const { doc, n } = e.fullDocument ?? e.updateDescription!.updatedFields;
        seen.set(doc, [...(seen.get(doc) ?? []), n]);
        return { matched: true, result: undefined };
      },
      log: createLogger({ name: 'test', level: 'silent' }),
      prefetch: 64,
    });
    const queue = new Queue('alpha', { connection: redis, prefix: 'changeq' });
    try {
      await waitFor(
        async () => (await queue.getCompletedCount()) === scenario.events.length,
        async () => JSON.stringify(await queue.getJobCounts()),
        30_000,
      );
      for (const [doc, numbers] of seen) {
        expect(numbers, doc).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
      }
      expect(seen.size).toBe(20);
      // The order came from the replies: the active list was read once, at start (recovery).
      expect(listReads).toBe(1);
    } finally {
      await queue.close();
      await worker.stop(1_000);
    }
  });
});

describe('refilling', () => {
  let server: RunningRedis;
  let redis: Redis;

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });

  // Issue 11: one script per job, as a bare BullMQ Worker. A full session must not stop the
  // finishing call from fetching the successor (each job being finished frees its own place),
  // or every job costs a separate getNextJob besides its moveToCompleted.
  it('a full session takes each next job with the call that finishes one', async () => {
    const scenario = buildScenario(40, 5, seeded(5));
    await enqueue(redis, scenario.events, () => 'alpha');
    let fetches = 0;
    const getNextJob = Worker.prototype.getNextJob;
    Worker.prototype.getNextJob = async function (this: Worker, ...args) {
      fetches++;
      return getNextJob.apply(this, args);
    };
    let done = 0;
    const worker = await startWorker({
      worker: 'alpha',
      redisUrl: server.url,
      settings: {
        concurrency: 4,
        attempts: 1,
        backoffMs: 10,
        maxBackoffMs: 10,
        timeoutMs: 5_000,
        deadLetter: 'block',
      },
      dispatch: () => {
        done++;
        return { matched: true, result: undefined };
      },
      log: createLogger({ name: 'test', level: 'silent' }),
      prefetch: 8,
    });
    const queue = new Queue('alpha', { connection: redis, prefix: 'changeq' });
    try {
      await waitFor(
        async () => (await queue.getCompletedCount()) === scenario.events.length,
        async () => JSON.stringify(await queue.getJobCounts()),
        30_000,
      );
      expect(done).toBe(scenario.events.length);
      // Filling the session and noticing the queue ran dry take a few; the rest come with
      // finishing calls.
      expect(fetches).toBeLessThan(scenario.events.length / 4);
    } finally {
      Worker.prototype.getNextJob = getNextJob;
      await queue.close();
      await worker.stop(1_000);
    }
  });

  // How long each job received waited for its place in fetch order: every job fetched is
  // counted once (`changeq_worker_fetch_order_wait_seconds`), in a real worker process.
  it('a worker process measures the wait for fetch order of every job it receives', async () => {
    await redis.flushdb();
    const jobs = 3000;
    await enqueueUpdates(redis, 'alpha', jobs, 100);
    const httpPort = await freePort();
    const worker = startWorkerProcess(
      ['--name', 'alpha', '--handlers', join(APP_DIR, 'test/fixtures/noop-handlers.mjs')],
      {
        REDIS_URL: server.url,
        WORKERS_FILE: workersFile('workers = ["alpha"]\n[defaults]\nconcurrency = 16\n'),
        HTTP_PORT: String(httpPort),
      },
    );
    await waitFor(
      async () => (await redis.zcard('changeq:alpha:completed')) >= jobs,
      () => `${jobs} completed jobs; the worker's last lines:\n${worker.output().slice(-2000)}`,
      30_000,
    );
    const text = await scrape(httpPort);
    const wait = 'changeq_worker_fetch_order_wait_seconds';
    expect(total(text, `${wait}_count`, { worker: 'alpha' })).toBe(jobs);
    const sum = total(text, `${wait}_sum`, { worker: 'alpha' });
    expect(sum).toBeGreaterThan(0);
    expect(sum / jobs).toBeLessThan(1); // seconds: a wait, not a clock's reading
    // The buckets are cumulative: the last one holds every job.
    expect(samples(text, `${wait}_bucket`, { worker: 'alpha', le: '+Inf' })).toEqual([jobs]);
    await worker.stop();
  });
});
