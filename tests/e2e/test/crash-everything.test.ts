/**
 * The product's promise end to end: writes in MongoDB become handler calls in the workers, every
 * event at least once, and per document never out of oplog order, while every process of the
 * system (the ingest and each worker) is killed with SIGKILL at random moments and restarted.
 */
import { join } from 'node:path';
import { MongoClient, type Timestamp } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Router } from '@changeq/shared';
import { planEvent } from '@changeq/source';
import { startStack, type RunningStack } from '@changeq/stack';
import {
  CallLog,
  Supervised,
  changesSince,
  expectedJobs,
  recordingHandlersPath,
  seededRandom,
  tempDir,
  workersFile,
  writeChaos,
  waitForDeliveries,
} from '@changeq/testkit';

const NAMES = ['north', 'south'];

let stack: RunningStack;
beforeAll(async () => {
  stack = await startStack({ redis: { appendfsync: 'always' } });
});
afterAll(async () => {
  await stack?.stop();
});

test('every event reaches a handler, in per-document oplog order, while every process is killed at random', async () => {
  const workersToml = workersFile(
    `workers = ${JSON.stringify(NAMES)}\n\n[defaults]\nconcurrency = 8\nattempts = 10\nbackoff_ms = 20\nmax_backoff_ms = 200\n`,
  );
  const record = join(tempDir('changeq-e2e-'), 'calls.jsonl');
  const client = new MongoClient(stack.mongodbUri);
  await client.connect();
  // The cluster time only moves with writes, and START_AT has one-second resolution.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await client.db('warmup').collection('x').insertOne({});
  const from = (await client.db('admin').command({ hello: 1 })).operationTime as Timestamp;
  const env = {
    MONGODB_URI: stack.mongodbUri,
    REDIS_URL: stack.redisUrl,
    WORKERS_FILE: workersToml,
    LOG_LEVEL: 'warn',
  };
  const ingest = new Supervised('ingest', 'ingest', [], {
    ...env,
    WATCH: 'e2e',
    START_AT: new Date(from.high * 1000).toISOString(),
    BATCH_SIZE: '100',
    MAX_AWAIT_TIME_MS: '200',
    CHANGEQ_FAULT_POINTS: 'after-queue-commit=0.01,before-token-save=0.01',
  });
  const workers = NAMES.map(
    (name) =>
      new Supervised(name, 'worker', ['--name', name, '--handlers', recordingHandlersPath()], {
        ...env,
        LEASE_TTL_MS: '2000',
        LOCK_DURATION_MS: '5000',
        CHANGEQ_RECORD_FILE: record,
        CHANGEQ_RECORD_FAIL_RATE: '0.2',
        CHANGEQ_RECORD_SLEEP_MAX_MS: '5',
      }),
  );
  const all = [ingest, ...workers];
  try {
    // The writes: inserts, updates, replaces, deletes and transactions over 150 documents.
    const random = seededRandom(42);
    let writing = true;
    const writes = writeChaos(stack.mongodbUri, {
      operations: 5000,
      documents: 150,
      collections: ['a', 'b'],
      db: 'e2e',
      writers: 2,
      seed: 42,
    }).finally(() => (writing = false));
    let kills = 0;
    while (writing || kills < 10) {
      await new Promise((resolve) => setTimeout(resolve, 300 + random() * 700));
      void all[Math.floor(random() * all.length)]!.kill();
      kills += 1;
    }
    await writes;

    // The server's own record of every change since `from`, and the jobs it calls for.
    const truth = await changesSince(client.db('e2e'), from);
    expect(truth.length).toBeGreaterThanOrEqual(5000);
    const router = new Router(NAMES);
    const expected = expectedJobs(truth, (event) =>
      planEvent(event, router).map((job) => ({ worker: job.queue, jobId: job.jobId })),
    );

    // Wait until every event has a successful handler call.
    const report = await waitForDeliveries(expected, new CallLog(record), all, 120_000, 500);
    // Never out of order per document (repeats of one event after a crash are allowed), and
    // nothing handled that the history does not call for.
    // (The first few of each, so a failure stays readable.)
    expect(
      report.orderViolations.slice(0, 5),
      `${report.orderViolations.length} violations`,
    ).toEqual([]);
    expect(report.unexpected.slice(0, 5), `${report.unexpected.length} unexpected`).toEqual([]);
    const restarts = all.map((p) => `${p.name} ${p.restarts}`).join(', ');
    console.log(
      `end to end: ${truth.length} events, ${expected.length} jobs, ${report.reruns} re-runs after crashes; ${kills} SIGKILLs from outside; restarts: ${restarts}`,
    );
    expect(all.reduce((sum, p) => sum + p.restarts, 0)).toBeGreaterThanOrEqual(10);
  } finally {
    await Promise.all(all.map((p) => p.stop()));
    await client.close();
  }
});
