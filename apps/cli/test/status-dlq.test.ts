/**
 * `status` against the queues' own counts, and the dead-letter commands end to end: a real
 * ingest, a real worker for alpha (bravo has none), events that fail into dead letters.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { MongoClient, ObjectId } from 'mongodb';
import { Router } from '@changeq/shared';
import { workerKeys } from '@changeq/store';
import { startStack, type RunningStack } from '@changeq/stack';
import { endProcesses, startApp, waitFor, workersFile, type TestProcess } from '@changeq/testkit';
import { HANDLERS, cli, userErrorLine } from './helpers.js';

const NAMES = ['alpha', 'bravo'];
const WORKERS = workersFile(`workers = ["alpha", "bravo"]
[defaults]
attempts = 1
`);
const HEAL_FILE = join(mkdtempSync(join(tmpdir(), 'changeq-heal-')), 'healed');

let stack: RunningStack;
let mongo: MongoClient;
let redis: Redis;
const processes: TestProcess[] = [];
let alpha: TestProcess;
let ingest: TestProcess;
const env = () => ({
  REDIS_URL: stack.redisUrl,
  MONGODB_URI: stack.mongodbUri,
  WORKERS_FILE: WORKERS,
  QUEUE_PREFIX: 'sd',
  INGEST_ID: 'sd',
});

/** Documents whose _id routes to `worker` (so the test knows which queue gets what). */
function idsFor(worker: string, count: number): ObjectId[] {
  const router = new Router(NAMES);
  const ids: ObjectId[] = [];
  while (ids.length < count) {
    const id = new ObjectId();
    if (router.route('sd.c', id) === worker) ids.push(id);
  }
  return ids;
}

const STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const;

/** BullMQ's own counts of a queue. */
async function counts(name: string): Promise<Record<(typeof STATES)[number], number>> {
  const queue = new Queue(name, { connection: redis, prefix: 'sd' });
  try {
    const raw = await queue.getJobCounts(...STATES);
    return Object.fromEntries(STATES.map((state) => [state, raw[state] ?? 0])) as Record<
      (typeof STATES)[number],
      number
    >;
  } finally {
    await queue.close();
  }
}

const failing = idsFor('alpha', 2);

beforeAll(async () => {
  stack = await startStack();
  mongo = new MongoClient(stack.mongodbUri);
  await mongo.connect();
  redis = new Redis(stack.redisUrl);
  ingest = startApp('ingest', [], { ...env(), WATCH: 'sd.c', MAX_AWAIT_TIME_MS: '100' });
  processes.push(ingest);
  await waitFor(
    () => ingest.output().includes('change stream open'),
    'the ingest to open its stream',
  );
  alpha = startApp('worker', ['--name', 'alpha', '--handlers', HANDLERS], { ...env(), HEAL_FILE });
  processes.push(alpha);
  await waitFor(() => alpha.output().includes('active: this process holds the lease'), 'alpha');

  const c = mongo.db('sd').collection('c');
  // Plain documents for both workers, two failing inserts for alpha and a later update of each
  // (parked behind its dead letter: dead_letter = "block").
  await c.insertMany([...idsFor('alpha', 5), ...idsFor('bravo', 4)].map((_id) => ({ _id })));
  await c.insertMany(failing.map((_id) => ({ _id, fail: true })));
  for (const _id of failing) await c.updateOne({ _id }, { $set: { later: true } });
  await waitFor(
    async () => (await redis.hlen(workerKeys('sd', 'alpha').blocked)) === 2,
    'two blocked documents',
  );
  await waitFor(async () => {
    const [a, b, dead] = await Promise.all([
      counts('alpha'),
      counts('bravo'),
      counts('alpha.dead'),
    ]);
    return a.waiting + a.active === 0 && b.waiting === 4 && dead.waiting === 4;
  }, 'alpha to finish and bravo to hold its events');
});
afterAll(async () => {
  await endProcesses(processes.splice(0));
  redis?.disconnect();
  await mongo?.close();
  await stack?.stop();
});

describe('status', () => {
  test('--json agrees with the queues and lists the live processes and the names without one', async () => {
    const result = await cli(['status', '--json'], env());
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({
      version: 1,
      prefix: 'sd',
      ingestId: 'sd',
      ingest: { running: true },
      position: { kind: 'token' },
      workersWithoutProcess: ['bravo'],
    });
    // The ingest holds the lease (fence 1 of this id) and no standby runs.
    expect(report.ingest.leader).toMatchObject({ pid: ingest.pid, fence: 1 });
    expect(report.ingest.standbys).toEqual([]);
    expect(report.position.lagSeconds).toBeGreaterThanOrEqual(0);
    expect(report.position.token).toMatch(/^[0-9A-F]+$/i);
    for (const name of NAMES) {
      const entry = report.workers.find((w: { name: string }) => w.name === name);
      expect(entry.counts).toEqual(await counts(name));
      const dead = await counts(`${name}.dead`);
      expect(entry.deadLetters).toBe(dead.waiting + dead.delayed + dead.prioritized);
      expect(entry.blockedDocuments).toBe(await redis.hlen(workerKeys('sd', name).blocked));
    }
    const alphaEntry = report.workers.find((w: { name: string }) => w.name === 'alpha');
    expect(alphaEntry.process).toMatchObject({ pid: alpha.pid });
    expect(alphaEntry.process.leaseExpiresInMs).toBeGreaterThan(0);
    expect(report.workers.find((w: { name: string }) => w.name === 'bravo').process).toBeNull();
  });

  test('the human form names the live process and the name without one', async () => {
    const result = await cli(['status'], env());
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/ingest "sd" .*: running/);
    expect(result.stdout).toMatch(new RegExp(`leader: pid ${ingest.pid} on .* \\(fence 1\\)`));
    expect(result.stdout).toMatch(new RegExp(`alpha +pid ${alpha.pid} on `));
    expect(result.stdout).toMatch(/bravo +NO LIVE PROCESS/);
    expect(result.stdout).toMatch(/^alpha +0 +0 +0 +0 +\d+ +4 +2$/m);
  });
});

describe('dlq', () => {
  test('list: dead letters first, then the parked events behind them; --json; a wrong name lists the names', async () => {
    const result = await cli(['dlq', 'list', '--worker', 'alpha', '--json'], env());
    expect(result.code).toBe(0);
    const entries = JSON.parse(result.stdout) as {
      kind: string;
      doc: string;
      info: { blockedBy?: string };
    }[];
    expect(entries.map((e) => e.kind)).toEqual(['dead', 'dead', 'parked', 'parked']);
    const human = await cli(['dlq', 'list', '--worker', 'alpha'], env());
    expect(human.stdout).toMatch(/alpha\.dead: 2 dead letters, 2 parked events/);
    expect(human.stdout).toContain('planned failure of');

    const wrong = userErrorLine(await cli(['dlq', 'list', '--worker', 'zed'], env()));
    expect(wrong).toMatch(
      /worker "zed" is not in .*\(its names: alpha, bravo\).*Fix: pass --worker with one of: alpha, bravo/,
    );
    const noJob = userErrorLine(
      await cli(['dlq', 'retry', '--worker', 'alpha', '--job', 'nope'], env()),
    );
    expect(noJob).toMatch(/no dead letter nope .*Fix: run `changeq dlq list --worker alpha`/);
    const parked = entries.find((e) => e.kind === 'parked') as unknown as {
      jobId: string;
      info: { blockedBy: string };
    };
    const refusal = userErrorLine(
      await cli(['dlq', 'retry', '--worker', 'alpha', '--job', parked.jobId], env()),
    );
    expect(refusal).toContain(`parked behind dead letter ${parked.info.blockedBy}`);
    userErrorLine(await cli(['dlq', 'retry', '--worker', 'alpha'], env()));
  });

  test('retry runs a dead letter and its parked event; discard needs --yes without a terminal, then drops one', async () => {
    const entries = JSON.parse(
      (await cli(['dlq', 'list', '--worker', 'alpha', '--json'], env())).stdout,
    ) as {
      jobId: string;
      kind: string;
      doc: string;
    }[];
    const [first, second] = entries.filter((e) => e.kind === 'dead');
    writeFileSync(HEAL_FILE, 'healed');
    expect(existsSync(HEAL_FILE)).toBe(true);

    const retried = await cli(['dlq', 'retry', '--worker', 'alpha', '--job', first!.jobId], env());
    expect(retried.code).toBe(0);
    expect(retried.stdout).toMatch(
      new RegExp(
        `queued retry of 1 dead letter \\(${first!.jobId}\\); the active alpha process \\(pid ${alpha.pid}`,
      ),
    );
    await waitFor(
      async () => !(await redis.hexists(workerKeys('sd', 'alpha').blocked, first!.doc)),
      'the retried document to be unblocked',
    );

    const refused = userErrorLine(
      await cli(['dlq', 'discard', '--worker', 'alpha', '--all'], env()),
    );
    expect(refused).toMatch(
      /dlq discard needs a confirmation .*stdin is not a terminal.*Fix: rerun with --yes/,
    );
    expect(await redis.hexists(workerKeys('sd', 'alpha').blocked, second!.doc)).toBe(1);

    const discarded = await cli(['dlq', 'discard', '--worker', 'alpha', '--all', '--yes'], env());
    expect(discarded.code).toBe(0);
    expect(discarded.stdout).toContain(`queued discard of 1 dead letter (${second!.jobId})`);
    await waitFor(
      async () => (await redis.hlen(workerKeys('sd', 'alpha').blocked)) === 0,
      'no blocked document',
    );
    await waitFor(
      async () => (await counts('alpha.dead')).waiting === 0,
      'an empty dead-letter queue',
    );
    const after = await cli(['dlq', 'list', '--worker', 'alpha'], env());
    expect(after.stdout.trim()).toBe('no dead letters in alpha.dead');
    const status = JSON.parse((await cli(['status', '--json'], env())).stdout);
    expect(status.workers.find((w: { name: string }) => w.name === 'alpha')).toMatchObject({
      deadLetters: 0,
      blockedDocuments: 0,
      pendingCommands: 0,
    });
  });
});
