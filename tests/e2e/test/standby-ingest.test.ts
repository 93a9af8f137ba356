/**
 * Standby ingests (issue 10): two ingest processes with the same settings, KEEP_COMPLETED_COUNT=0
 * (a job enqueued twice would run twice: nothing hides a duplicate) and real workers consuming.
 * The leader is SIGKILLed (its supervisor restarts it, as a standby) and SIGSTOPped past its
 * lease, then continued: a standby takes over each time, the paused one wakes up deposed, logs
 * it once and waits as a standby. Every change is handled exactly once, in order per document,
 * checked against the server's own change history.
 *
 * STANDBY_KILLS and STANDBY_PAUSES (1 and 1 here) scale it up: the chaos matrix's rows
 * standby-ingest-sigkill / -sigstop run 5 kills and 2 pauses (each ingest paused once).
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { MongoClient, type Timestamp } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Router } from '@changeq/shared';
import { planEvent } from '@changeq/source';
import { startStack, type RunningStack } from '@changeq/stack';
import { ingestKeys, parseLeaseValue } from '@changeq/store';
import {
  CallLog,
  Supervised,
  changesSince,
  expectedJobs,
  recordingHandlersPath,
  seededRandom,
  startApp,
  tempDir,
  writeChaos,
  type TestProcess,
  waitForDeliveries,
} from '@changeq/testkit';

const NAMES = ['alpha', 'bravo'];
const KILLS = Number(process.env.STANDBY_KILLS ?? 1);
const PAUSES = Number(process.env.STANDBY_PAUSES ?? 1);
const LEASE_TTL_MS = 2000;
const DB = 'standby';

let stack: RunningStack;
let redis: Redis;
beforeAll(async () => {
  stack = await startStack({ redis: { appendfsync: 'always' } });
  redis = new Redis(stack.redisUrl);
});
afterAll(async () => {
  redis?.disconnect();
  await stack?.stop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The pid of the ingest that holds the lease now (null: none). */
async function leaderPid(): Promise<number | null> {
  return parseLeaseValue(await redis.get(ingestKeys(DB, 'default').lease))?.pid ?? null;
}

/** Waits until a process other than `not` holds the lease; its pid and how long it took. */
async function nextLeader(not: number | null, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pid = await leaderPid();
    if (pid !== null && pid !== not) return pid;
    if (Date.now() > deadline) throw new Error(`no ingest other than ${not} took the lease`);
    await sleep(50);
  }
}

test('two ingests, the leader SIGKILLed and SIGSTOPped past its lease: every change handled exactly once, in order', async () => {
  const dir = tempDir('changeq-standby-');
  const file = join(dir, 'workers.toml');
  writeFileSync(file, `workers = ${JSON.stringify(NAMES)}\n\n[defaults]\nconcurrency = 8\n`);
  const record = join(dir, 'calls.jsonl');
  const client = new MongoClient(stack.mongodbUri);
  await client.connect();
  await sleep(1100); // START_AT has one-second resolution
  await client.db('warmup').collection('x').insertOne({});
  const from = (await client.db('admin').command({ hello: 1 })).operationTime as Timestamp;
  const env = {
    MONGODB_URI: stack.mongodbUri,
    REDIS_URL: stack.redisUrl,
    WORKERS_FILE: file,
    QUEUE_PREFIX: DB,
    LOG_LEVEL: 'info',
    KEEP_COMPLETED_COUNT: '0',
  };
  const ingestEnv = {
    ...env,
    WATCH: DB,
    START_AT: new Date(from.high * 1000).toISOString(),
    BATCH_SIZE: '50',
    MAX_AWAIT_TIME_MS: '200',
    INGEST_LEASE_TTL_MS: String(LEASE_TTL_MS),
  };
  const ingests = [
    new Supervised('ingest-a', 'ingest', [], ingestEnv),
    new Supervised('ingest-b', 'ingest', [], ingestEnv),
  ];
  const workers = NAMES.map(
    (name) =>
      new Supervised(name, 'worker', ['--name', name, '--handlers', recordingHandlersPath()], {
        ...env,
        CHANGEQ_RECORD_FILE: record,
        CHANGEQ_RECORD_SLEEP_MAX_MS: '3',
      }),
  );
  const all = [...ingests, ...workers];
  const byPid = (pid: number) => ingests.find((i) => i.current.pid === pid);
  const random = seededRandom(17);
  const writing = new AbortController();
  const writes = writeChaos(stack.mongodbUri, {
    operations: Infinity,
    documents: 150,
    collections: ['a', 'b'],
    db: DB,
    writers: 2,
    seed: 5,
    ratePerSecond: 300,
    signal: writing.signal,
  });
  const takeovers: number[] = [];
  const pausedRuns: TestProcess[] = [];
  try {
    let leader = await nextLeader(null);
    for (let k = 0; k < KILLS; k++) {
      await sleep(500 + random() * 1000);
      const killed = leader;
      const at = Date.now();
      byPid(killed)!.signal('SIGKILL');
      leader = await nextLeader(killed);
      takeovers.push(Date.now() - at);
    }
    for (let p = 0; p < PAUSES; p++) {
      await sleep(500 + random() * 1000);
      const paused = byPid(leader)!;
      const pid = leader;
      paused.signal('SIGSTOP');
      leader = await nextLeader(pid);
      await sleep(500); // the new leader commits while the old one sleeps
      paused.signal('SIGCONT');
      pausedRuns.push(paused.current);
    }
    await sleep(1500);
    writing.abort();
    await writes;

    const truth = await changesSince(client.db(DB), from);
    const router = new Router(NAMES);
    const expected = expectedJobs(truth, (event) =>
      planEvent(event, router).map((job) => ({ worker: job.queue, jobId: job.jobId })),
    );
    const log = new CallLog(record);
    const report = await waitForDeliveries(expected, log, all, 90_000);
    expect(
      report.orderViolations.slice(0, 5),
      `${report.orderViolations.length} violations`,
    ).toEqual([]);
    expect(report.unexpected.slice(0, 5), `${report.unexpected.length} unexpected`).toEqual([]);
    // No worker failed: a handler called twice for a job would be a job enqueued twice.
    expect(report.reruns).toBe(0);
    expect(report.failedCalls + report.abortedCalls).toBe(0);

    // Each paused leader woke up deposed: said so once, and waits as a standby.
    for (const run of pausedRuns) {
      await run.waitForLine(/"msg":"deposed: /, 10_000);
      await run.waitForLine(/"msg":"standby: /, 10_000);
    }
    const deposed = ingests.flatMap((i) =>
      i.processes.map(
        (run) =>
          run
            .output()
            .split('\n')
            .filter((l) => l.includes('"msg":"deposed: ')).length,
      ),
    );
    expect(deposed.reduce((a, b) => a + b, 0)).toBe(PAUSES);
    expect(Math.max(...deposed)).toBeLessThanOrEqual(1);

    // status names the leader and the standby.
    const run = startApp('cli', ['status', '--json'], { ...env, INGEST_ID: 'default' });
    const { code } = await run.closed;
    expect(code, run.stderr()).toBe(0);
    const status = JSON.parse(run.stdout()) as {
      ingest: { leader: { pid: number } | null; standbys: { pid: number }[] };
    };
    expect(status.ingest.leader?.pid).toBe(await leaderPid());
    expect(status.ingest.standbys.map((s) => s.pid)).toEqual(
      ingests.map((i) => i.current.pid).filter((pid) => pid !== status.ingest.leader?.pid),
    );
    console.log(
      `standby ingests: ${truth.length} changes, ${expected.length} jobs handled once each; ${KILLS} SIGKILLs of the leader taken over after ${takeovers.join(', ')} ms (lease ${LEASE_TTL_MS} ms); ${PAUSES} leaders paused past the lease woke up deposed`,
    );
  } finally {
    writing.abort();
    await writes.catch(() => undefined);
    await Promise.all(all.map((p) => p.stop()));
    await client.close();
  }
});
