/**
 * Routing keys (issue 13, point 1), with real processes: orders routed by
 * `fullDocument.customerId` run in order per customer across many documents and three workers;
 * an update that moves an order to another customer runs only after the order's earlier events
 * finished under the old customer (its old worker is paused across the move: the moved event
 * waits, other work goes on); a namespace without `[routing]` gets byte for byte the jobs it got
 * before routing keys; and the ingest refuses a key it cannot read, in one line.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { MongoClient, type ChangeStreamDocument, type Db, type Timestamp } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Router, lineKey, parseRoutingRule, parseWorkersConfig } from '@changeq/shared';
import { planEvent } from '@changeq/source';
import { startStack, type RunningStack } from '@changeq/stack';
import { queueKeys } from '@changeq/store';
import {
  CallLog,
  Supervised,
  checkDeliveries,
  expectedJobs,
  recordingHandlersPath,
  startApp,
  tempDir,
  type ExpectedJob,
  waitForDeliveries,
} from '@changeq/testkit';

const NAMES = ['north', 'south', 'east'];
const DB = 'rkeys';
const TOML = `workers = ${JSON.stringify(NAMES)}

[defaults]
concurrency = 8

[routing]
"${DB}.orders" = "fullDocument.customerId"
`;
const rules = parseWorkersConfig(TOML, 'workers.toml').routing;
const router = new Router(NAMES);
const customerRule = parseRoutingRule('fullDocument.customerId');
const ownerOf = (customer: string) =>
  router.routeKey(lineKey(`${DB}.orders`, customerRule, customer));

let stack: RunningStack;
let redis: Redis;
beforeAll(async () => {
  stack = await startStack();
  redis = new Redis(stack.redisUrl);
});
afterAll(async () => {
  redis?.disconnect();
  await stack?.stop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The server's record since `from`, with the images the ingest reads (post- and pre-images). */
async function history(db: Db, from: Timestamp): Promise<ChangeStreamDocument[]> {
  const stream = db.watch([], {
    startAtOperationTime: from,
    maxAwaitTimeMS: 200,
    fullDocument: 'required',
    fullDocumentBeforeChange: 'whenAvailable',
  });
  const events: ChangeStreamDocument[] = [];
  let quietSince = Date.now();
  while (Date.now() - quietSince < 1000) {
    const change = await stream.tryNext();
    if (change) {
      events.push(change);
      quietSince = Date.now();
    }
  }
  await stream.close();
  return events;
}

/** The first `count` customer names whose orders the worker `worker` owns. */
function customersOf(worker: string, count: number): string[] {
  const found: string[] = [];
  for (let n = 0; found.length < count; n++) {
    if (ownerOf(`cust-${n}`) === worker) found.push(`cust-${n}`);
  }
  return found;
}

test('per-customer order across documents and workers; a customer change waits for the old customer’s line; other namespaces unchanged', async () => {
  const dir = tempDir('changeq-rkeys-');
  const file = join(dir, 'workers.toml');
  writeFileSync(file, TOML);
  const record = join(dir, 'calls.jsonl');
  const client = new MongoClient(stack.mongodbUri);
  await client.connect();
  const db = client.db(DB);
  await db.createCollection('orders', { changeStreamPreAndPostImages: { enabled: true } });
  await db.createCollection('items', { changeStreamPreAndPostImages: { enabled: true } });
  await sleep(1100); // START_AT has one-second resolution, and the oplog begins at the stack's start
  await client.db('warmup').collection('x').insertOne({});
  const from = (await client.db('admin').command({ hello: 1 })).operationTime as Timestamp;
  const env = {
    MONGODB_URI: stack.mongodbUri,
    REDIS_URL: stack.redisUrl,
    WORKERS_FILE: file,
    QUEUE_PREFIX: DB,
    LOG_LEVEL: 'info',
  };
  const ingest = new Supervised('ingest', 'ingest', [], {
    ...env,
    WATCH: DB,
    START_AT: new Date(from.high * 1000).toISOString(),
    FULL_DOCUMENT: 'required',
    FULL_DOCUMENT_BEFORE_CHANGE: 'whenAvailable',
    BATCH_SIZE: '50',
    MAX_AWAIT_TIME_MS: '100',
  });
  const workers = new Map(
    NAMES.map((name) => [
      name,
      new Supervised(name, 'worker', ['--name', name, '--handlers', recordingHandlersPath()], {
        ...env,
        LEASE_TTL_MS: '15000',
        LOCK_DURATION_MS: '5000',
        CHANGEQ_RECORD_FILE: record,
        CHANGEQ_RECORD_SLEEP_MAX_MS: '6',
      }),
    ]),
  );
  const all = [ingest, ...workers.values()];
  try {
    await ingest.current.waitForLine(/change stream open/, 30_000);
    const orders = db.collection<{ _id: number; customerId: string; n: number }>('orders');
    const items = db.collection<{ _id: number; n: number }>('items');

    // Many documents of few customers, on every worker; updates in rounds.
    const customers = NAMES.flatMap((worker) => customersOf(worker, 2));
    await orders.insertMany(
      Array.from({ length: 24 }, (_, i) => ({ _id: i, customerId: customers[i % 6]!, n: 0 })),
    );
    await items.insertMany(Array.from({ length: 10 }, (_, i) => ({ _id: i, n: 0 })));
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        Array.from({ length: 24 }, (_, i) => orders.updateOne({ _id: i }, { $inc: { n: 1 } })),
      );
      await items.updateMany({}, { $inc: { n: 1 } });
    }

    // A move across workers while the old customer's worker is paused: order 0 (customer X on
    // worker W) gets updates, then moves to customer Y of another worker, then more updates.
    const x = customers[0]!;
    const w = ownerOf(x);
    const y = customers.find((c) => ownerOf(c) !== w)!;
    const z = customers.find((c) => c !== y && ownerOf(c) === ownerOf(y))!;
    await sleep(300);
    workers.get(w)!.signal('SIGSTOP');
    let moveAt: number;
    try {
      for (let k = 0; k < 5; k++) await orders.updateOne({ _id: 0 }, { $inc: { n: 1 } });
      await orders.updateOne({ _id: 0 }, { $set: { customerId: y } });
      moveAt = Date.now();
      for (let k = 0; k < 3; k++) await orders.updateOne({ _id: 0 }, { $inc: { n: 1 } });
      // Other work of the new owner goes on meanwhile: a new order of another of its customers
      // (a new order of Y itself would rightly wait behind the move, on Y's line).
      await orders.insertOne({ _id: 100, customerId: z, n: 0 });
      await sleep(1500);
    } finally {
      workers.get(w)!.signal('SIGCONT');
    }
    // A move between two customers of one worker (the marker and the event share a queue).
    const same = customers.filter((c) => ownerOf(c) === ownerOf(customers[1]!));
    await orders.updateOne({ _id: 1 }, { $inc: { n: 1 } });
    await orders.updateOne(
      { _id: 1 },
      { $set: { customerId: same.find((c) => c !== customers[1])! } },
    );
    await orders.updateOne({ _id: 1 }, { $inc: { n: 1 } });
    await orders.deleteOne({ _id: 2 });
    // Chains of moves, side by side: every update of orders 3 to 6 names another customer.
    await Promise.all(
      [3, 4, 5, 6].map(async (id) => {
        for (let k = 1; k <= 12; k++) {
          await orders.updateOne({ _id: id }, { $set: { customerId: customers[(id + k) % 6]! } });
        }
      }),
    );

    // Everything the history calls for, by customer and by document.
    const truth = await history(db, from);
    const plan = (event: ChangeStreamDocument) =>
      planEvent(event, router, undefined, rules)
        .filter((job) => job.name !== 'handoff')
        .map((job) => ({ worker: job.queue, jobId: job.jobId }));
    const byDocument = expectedJobs(truth, plan);
    const customerOf = (job: ExpectedJob) => {
      const e = job.event as {
        fullDocument?: { customerId?: string } | null;
        fullDocumentBeforeChange?: { customerId?: string } | null;
        ns: { coll: string };
      };
      if (e.ns.coll !== 'orders') return job.doc;
      return `customer:${(e.fullDocument ?? e.fullDocumentBeforeChange)?.customerId}`;
    };
    const byCustomer = byDocument.map((job) => ({ ...job, doc: customerOf(job) }));
    const log = new CallLog(record);
    const report = await waitForDeliveries(byCustomer, log, all, 60_000);
    const documentReport = checkDeliveries(byDocument, log.calls);
    expect(report.expected).toBeGreaterThan(120);
    for (const r of [report, documentReport]) {
      expect(r.orderViolations.slice(0, 5), `${r.orderViolations.length} violations`).toEqual([]);
      expect(r.unexpected.slice(0, 5)).toEqual([]);
      expect(r.reruns + r.failedCalls + r.abortedCalls).toBe(0);
    }

    // The move waited: none of order 0's events under Y ran before its worker came back, while
    // the new order of Y (same worker, another document) ran meanwhile.
    const moved = truth.filter(
      (e) =>
        e.operationType === 'update' &&
        (e.documentKey._id as unknown) === 0 &&
        (e as { fullDocument?: { customerId?: string } }).fullDocument?.customerId === y,
    );
    expect(moved.length).toBe(4);
    const movedPositions = new Set(moved.map((e) => (e._id as { _data: string })._data));
    const starts = log.calls.filter((c) => c.ph === 's');
    const firstMoved = Math.min(...starts.filter((c) => movedPositions.has(c.pos)).map((c) => c.t));
    const newOrder = starts.find((c) => c.doc === `${DB}.orders:{"$numberInt":"100"}`);
    expect(firstMoved - moveAt!).toBeGreaterThan(1000);
    expect(newOrder, 'another customer of the new owner ran while the move waited').toBeDefined();
    expect(newOrder!.t).toBeLessThan(firstMoved);

    // The namespace without [routing]: byte for byte the jobs of the default planner.
    const itemEvents = truth.filter((e) => (e as { ns: { coll: string } }).ns.coll === 'items');
    expect(itemEvents.length).toBe(40);
    for (const event of itemEvents) {
      const [job, ...rest] = planEvent(event, router);
      expect(rest).toEqual([]);
      const stored = await redis.hget(queueKeys(DB, job!.queue).job(job!.jobId), 'data');
      expect(stored).toBe(job!.json);
    }
  } finally {
    await Promise.all(all.map((p) => p.stop()));
    await client.close();
  }
}, 90_000);

test('the ingest refuses, in one line with the fix, a routing key it cannot read', async () => {
  const dir = tempDir('changeq-rkeys-bad-');
  const file = join(dir, 'workers.toml');
  writeFileSync(file, TOML);
  const run = startApp('ingest', [], {
    MONGODB_URI: stack.mongodbUri,
    REDIS_URL: stack.redisUrl,
    WORKERS_FILE: file,
    QUEUE_PREFIX: 'rkeys-bad',
    FULL_DOCUMENT: 'updateLookup',
  });
  const { code } = await run.closed;
  expect(code).toBe(2);
  const lines = run.stderr().trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(
    /\[routing\] "rkeys\.orders" = "fullDocument\.customerId" .*cannot be read on deletes.*FULL_DOCUMENT_BEFORE_CHANGE=required/,
  );
});
