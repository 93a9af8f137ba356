/**
 * The worker measures how long each job it receives waits for its place in fetch order
 * (`changeq_worker_fetch_order_wait_seconds`): every job fetched is counted once, with its wait.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { freePort, waitFor, workersFile } from '@changeq/testkit';
import { documentEvent, docIds, enqueue } from './helpers/events.js';
import { samples, scrape, total } from './helpers/metrics.js';
import { APP_DIR, startWorkerProcess } from './helpers/process.js';

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

it('counts every job received with the time it waited for its place in fetch order', async () => {
  const jobs = 3000;
  const ids = docIds(100);
  const events = Array.from({ length: jobs }, (_, i) =>
    documentEvent('update', 'shop', 'orders', ids[i % ids.length], { n: i }),
  );
  await enqueue(redis, events, () => 'alpha');
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
