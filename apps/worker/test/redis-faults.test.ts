/**
 * The worker as a process while Redis fails under it, seen through its log and /metrics:
 *
 * - Redis full (`maxmemory` reached, every write refused with OOM): fetching, extending the locks
 *   and carrying out a dead-letter command fail and are counted by operation and kind of error;
 *   the lock that lapsed meanwhile is taken back (a reclaim); once memory is back everything
 *   finishes.
 * - Redis restarted empty (no persistence: its data is lost) under a running worker: one error
 *   line naming what was lost, a metric, and the worker serves again.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { encodeCommand, workerKeys } from '@changeq/store';
import { freePort, waitFor, workersFile } from '@changeq/testkit';
import { documentEvent, enqueue } from './helpers/events.js';
import { scrape, total } from './helpers/metrics.js';
import { RECORDING_HANDLERS, startWorkerProcess } from './helpers/process.js';
import { callsOf } from './helpers/scenario.js';

const WORKERS = workersFile(`workers = ["alpha"]
[defaults]
concurrency = 2
attempts = 1
backoff_ms = 20
max_backoff_ms = 100
timeout_ms = 60000
dead_letter = "block"
`);

const keys = workerKeys('changeq', 'alpha');
const event = (doc: string, n = 1) =>
  documentEvent(n === 1 ? 'insert' : 'update', 'shop', 'orders', `id-${doc}`, { doc, n });

describe('Redis failing under a worker process', () => {
  let server: RunningRedis | undefined;
  let redis: Redis | undefined;
  const queues: Queue[] = [];

  afterEach(async () => {
    await Promise.all(queues.splice(0).map((queue) => queue.close()));
    redis?.disconnect();
    await server?.stop();
  });

  const setUp = async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
    redis.on('error', () => undefined); // the second test kills the server on purpose
    const queue = (name: string) => {
      const q = new Queue(name, { connection: redis!, prefix: 'changeq' });
      queues.push(q);
      return q;
    };
    return { server, redis, queue };
  };

  const startWorker = async (url: string, env: NodeJS.ProcessEnv = {}) => {
    const httpPort = await freePort();
    const worker = startWorkerProcess(['--name', 'alpha', '--handlers', RECORDING_HANDLERS], {
      REDIS_URL: url,
      WORKERS_FILE: WORKERS,
      REC_REDIS_URL: url,
      HTTP_PORT: String(httpPort),
      ...env,
    });
    return { worker, metrics: () => scrape(httpPort) };
  };

  it('Redis full: failed fetches, lock renewals and dead-letter commands are counted by kind, a lapsed lock is taken back', async () => {
    const { server, redis, queue } = await setUp();
    const dead = event('dead');
    const gate = event('gate');
    await enqueue(redis, [dead, gate], () => 'alpha');
    const { worker, metrics } = await startWorker(server.url, {
      REC_FAIL_EVENTS: 'dead:1',
      REC_HOLD_EVENTS: 'gate:1',
      LOCK_DURATION_MS: '1000',
    });
    const events = queue('alpha');
    const deadLetters = queue('alpha.dead');
    // The first event is a dead letter blocking its document; the second runs, held.
    await waitFor(
      async () =>
        (await redis.exists('rec:held:gate')) === 1 && (await redis.hlen(keys.blocked)) === 1,
      () => worker.output(),
      15_000,
    );
    await redis.set('rec:heal:dead', '1');
    const retry = encodeCommand({ op: 'retry', jobId: dead.id, at: new Date().toISOString() });
    // An operator's retry arrives as Redis fills up: from now on it refuses every write.
    await redis.multi().rpush(keys.commands, retry).config('SET', 'maxmemory', '1').exec();
    const fullSince = Date.now();
    const failures = (text: string, operation: string) =>
      total(text, 'changeq_worker_redis_failures_total', {
        worker: 'alpha',
        operation,
        error: 'reply',
      });
    // Long enough (1.5 s) for the held job's 1 s lock to lapse in Redis.
    await waitFor(
      async () => {
        const text = await metrics();
        return (
          ['fetch', 'lock-renewal', 'commands'].every((op) => failures(text, op) > 0) &&
          Date.now() - fullSince > 1_500
        );
      },
      async () => (await metrics()) + worker.output().slice(-3000),
      15_000,
    );
    await redis.config('SET', 'maxmemory', '0');
    await redis.set('rec:release:gate', '1');
    // Once Redis takes writes again: the held job finishes, the retried dead letter runs and
    // leaves the dead-letter queue, and its document is unblocked.
    await waitFor(
      async () =>
        (await events.getCompletedCount()) === 2 &&
        (await deadLetters.count()) === 0 &&
        (await redis.hlen(keys.blocked)) === 0,
      async () => JSON.stringify(await events.getJobCounts()) + worker.output().slice(-3000),
      15_000,
    );
    const text = await metrics();
    const reclaims = (result: string) =>
      total(text, 'changeq_worker_reclaims_total', { worker: 'alpha', result });
    expect(reclaims('active') + reclaims('moved-back')).toBeGreaterThan(0);
    expect(reclaims('gone') + reclaims('foreign')).toBe(0);
    expect((await callsOf(redis, 'dead')).map((c) => c.ok)).toEqual([false, true]);
    expect((await callsOf(redis, 'gate')).map((c) => c.ok)).toEqual([true]);
    expect(worker.output()).not.toMatch(/lease lost/);
  }, 60_000);

  it('Redis restarted empty under a running worker: one error line and a metric say so, then it serves again', async () => {
    const { server, redis } = await setUp();
    await enqueue(redis, [event('gate'), event('a'), event('b')], () => 'alpha');
    const { worker, metrics } = await startWorker(server.url, { REC_HOLD_EVENTS: 'gate:1' });
    await waitFor(
      async () =>
        (await redis.exists('rec:held:gate')) === 1 &&
        (await callsOf(redis, 'a')).length + (await callsOf(redis, 'b')).length === 2,
      () => worker.output(),
      15_000,
    );
    expect(total(await metrics(), 'changeq_worker_redis_data_lost_total')).toBe(0);
    // A Redis without persistence: killed, and back with nothing.
    await server.kill('SIGKILL');
    rmSync(join(server.dataDir, 'appendonlydir'), { recursive: true, force: true });
    await server.restart();
    const line = await worker.waitForLine(/Redis lost the data of worker/, 20_000);
    const logged = JSON.parse(line) as { level: number; msg: string };
    expect(logged.level).toBe(50); // error
    expect(logged.msg).toMatch(
      /^Redis lost the data of worker "alpha": its lease's fencing counter went back from 1 to 0 .*; the 1 job\(s\) this process held are gone, .*Fix: run Redis with persistence/,
    );
    // It takes the lease again and serves the queue as it is now.
    await enqueue(redis, [event('after')], () => 'alpha');
    await waitFor(
      async () => (await callsOf(redis, 'after')).length === 1,
      () => worker.output().slice(-3000),
      20_000,
    );
    const text = await metrics();
    expect(total(text, 'changeq_worker_redis_data_lost_total', { worker: 'alpha' })).toBe(1);
    expect(total(text, 'changeq_worker_lease_held', { worker: 'alpha' })).toBe(1);
    expect(worker.output().match(/Redis lost the data of worker/g)).toHaveLength(1);
  }, 60_000);
});
