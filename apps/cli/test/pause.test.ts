/**
 * `changeq pause|resume` end to end: a real ingest and a real worker whose handler calls take a
 * while; a paused worker lets its calls under way finish and starts none, a paused ingest
 * enqueues nothing; `--wait` returns once that holds; resuming loses nothing.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { MongoClient, ObjectId } from 'mongodb';
import { startStack, type RunningStack } from '@changeq/stack';
import { workerKeys } from '@changeq/store';
import {
  CallLog,
  endProcesses,
  freePort,
  recordingHandlersPath,
  startApp,
  tempDir,
  waitFor,
  workersFile,
  type TestProcess,
} from '@changeq/testkit';
import { Scrape, cli } from './helpers.js';

const WORKERS = workersFile(`workers = ["alpha"]
[defaults]
concurrency = 2
`);
const RECORD = `${tempDir('changeq-pause-')}/calls.jsonl`;

let stack: RunningStack;
let mongo: MongoClient;
let redis: Redis;
let queue: Queue;
let metricsUrl: string;
const processes: TestProcess[] = [];
let ingest: TestProcess;
let worker: TestProcess;
const calls = new CallLog(RECORD);
const env = () => ({
  REDIS_URL: stack.redisUrl,
  MONGODB_URI: stack.mongodbUri,
  WORKERS_FILE: WORKERS,
  QUEUE_PREFIX: 'pz',
  INGEST_ID: 'pz',
});

/** Handler calls started and not ended (by the record file). */
function running(): number {
  calls.read();
  const open = new Set<string>();
  for (const call of calls.calls) {
    if (call.ph === 's') open.add(call.job);
    else open.delete(call.job);
  }
  return open.size;
}

/** Every job the ingest has put in alpha's queue, in any state. */
async function enqueued(): Promise<number> {
  const counts = await queue.getJobCounts(
    'waiting',
    'active',
    'delayed',
    'prioritized',
    'completed',
    'failed',
  );
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

async function insert(count: number): Promise<ObjectId[]> {
  const ids = Array.from({ length: count }, () => new ObjectId());
  await mongo
    .db('pz')
    .collection('c')
    .insertMany(ids.map((_id) => ({ _id })));
  return ids;
}

beforeAll(async () => {
  stack = await startStack();
  mongo = new MongoClient(stack.mongodbUri);
  await mongo.connect();
  redis = new Redis(stack.redisUrl);
  queue = new Queue('alpha', { connection: redis, prefix: 'pz' });
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}`;
  ingest = startApp('ingest', [], {
    ...env(),
    WATCH: 'pz.c',
    MAX_AWAIT_TIME_MS: '100',
    HTTP_PORT: String(port),
  });
  processes.push(ingest);
  worker = startApp('worker', ['--name', 'alpha', '--handlers', recordingHandlersPath()], {
    ...env(),
    HTTP_PORT: '0',
    CHANGEQ_RECORD_FILE: RECORD,
    CHANGEQ_RECORD_SLEEP_MAX_MS: '400',
    // Shorter than the pause: the held jobs' locks and the lease must be renewed while paused.
    LOCK_DURATION_MS: '1000',
    LEASE_TTL_MS: '2000',
  });
  processes.push(worker);
  await waitFor(
    () => ingest.output().includes('change stream open'),
    'the ingest to open its stream',
  );
  await waitFor(
    () => worker.output().includes('active: this process holds the lease'),
    'the worker',
  );
});
afterAll(async () => {
  await endProcesses(processes.splice(0));
  await queue?.close();
  redis?.disconnect();
  await mongo?.close();
  await stack?.stop();
});

test('pause --wait returns once the paused worker and ingest stopped; resume loses nothing', async () => {
  const ids = await insert(30);
  await waitFor(() => running() > 0, 'a handler call under way');

  // The worker: --wait returns only when no call runs, and none starts while paused.
  const paused = await cli(['pause', '--worker', 'alpha', '--wait'], env());
  expect(paused.stdout, paused.stderr).toMatch(/^worker alpha: paused \(confirmed by pid \d+/);
  expect(paused.code).toBe(0);
  expect(running()).toBe(0);
  const startedBefore = calls.calls.filter((c) => c.ph === 's').length;
  expect(startedBefore).toBeLessThan(30);
  expect(worker.output()).toContain('paused by the operator');

  // The ingest: nothing is enqueued while it is paused.
  const ingestPaused = await cli(['pause', '--ingest', '--wait'], env());
  expect(ingestPaused.stdout, ingestPaused.stderr).toMatch(/^ingest pz: paused/);
  await waitFor(async () => (await enqueued()) === 30, 'the first 30 events enqueued');
  ids.push(...(await insert(5)));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  expect(await enqueued()).toBe(30);
  calls.read();
  expect(calls.calls.filter((c) => c.ph === 's').length).toBe(startedBefore);
  // Paused for longer than a lock and a lease last: both still held by the worker.
  const held = await redis.lrange('pz:alpha:active', 0, -1);
  expect(held.length).toBeGreaterThan(0);
  for (const jobId of held) expect(await redis.pttl(`pz:alpha:${jobId}:lock`)).toBeGreaterThan(0);
  expect(await redis.pttl(workerKeys('pz', 'alpha').lease)).toBeGreaterThan(0);

  const status = JSON.parse((await cli(['status', '--json'], env())).stdout) as {
    ingest: { pause: { state: string } };
    workers: { name: string; pause: { state: string } }[];
  };
  expect(status.ingest.pause.state).toBe('paused');
  expect(status.workers.find((w) => w.name === 'alpha')?.pause.state).toBe('paused');
  const scrape = await Scrape.of(metricsUrl);
  expect(scrape.samples('changeq_ingest_state', { state: 'paused' })).toEqual([1]);
  const ready = (await (await fetch(`${metricsUrl}/readyz`)).text()) as string;
  expect(ready).toContain('paused by the operator');

  // Resumed: every event runs, once the ingest has read what it skipped while paused.
  for (const args of [['--ingest'], ['--worker', 'alpha']]) {
    const resumed = await cli(['resume', ...args, '--wait'], env());
    expect(resumed.stdout, resumed.stderr).toMatch(/: running \(confirmed by pid/);
  }
  const expected = new Set(ids.map((id) => id.toHexString()));
  await waitFor(() => {
    calls.read();
    const done = new Set(calls.calls.filter((c) => c.ph === 'e' && c.r === 'ok').map((c) => c.doc));
    return [...expected].every((id) => [...done].some((doc) => doc.includes(id)));
  }, 'every event handled after the resume');
  expect(await enqueued()).toBe(35);
}, 90_000); // seven CLI runs and two waits: slow on a loaded machine

test('pause needs --ingest or --worker, not both', async () => {
  const none = await cli(['pause'], env());
  expect(none.code).toBe(2);
  expect(none.stderr).toMatch(/pause needs --ingest or --worker <name>\. Fix: .*alpha/);
  const both = await cli(['resume', '--ingest', '--worker', 'alpha'], env());
  expect(both.stderr).toMatch(/--ingest and --worker exclude each other/);
});
