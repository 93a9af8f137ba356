// Fault injection with the server's `failCommand` fail point (mongod --setParameter
// enableTestCommands=1), and the driver's automatic change-stream resume from the Change Streams
// spec ("Resumable Error", "Resume Process"). Skipped only against an external server that
// rejects configureFailPoint.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MongoNetworkError, MongoServerError } from 'mongodb';
import type { Collection, Db, MongoClient } from 'mongodb';
import { failPointsAvailable, startTarget, uniqueDb } from '../helpers/target.js';
import type { Target } from '../helpers/target.js';
import { sleep, take } from '../helpers/streams.js';

let target: Target;
let client: MongoClient;
let admin: Db;
let enabled = false;

beforeAll(async () => {
  target = await startTarget();
  client = await target.client();
  admin = client.db('admin');
  enabled = await failPointsAvailable(target, client);
});
afterEach(async () => {
  if (enabled) await admin.command({ configureFailPoint: 'failCommand', mode: 'off' });
});
afterAll(async () => {
  await target.stop();
});

const fp = (mode: unknown, data: Record<string, unknown>): Promise<unknown> =>
  admin.command({ configureFailPoint: 'failCommand', mode, data });

async function coll(prefix: string): Promise<Collection> {
  const d = client.db(uniqueDb(prefix));
  await d.createCollection('c');
  return d.collection('c');
}

describe('failCommand (server fail points)', () => {
  it('fails listed commands with errorCode for {times: n} and then stops', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('fp_times');
    await fp({ times: 2 }, { failCommands: ['find'], errorCode: 2 });
    for (let i = 0; i < 2; i++) {
      const err = (await c.findOne({}).catch((e: unknown) => e)) as MongoServerError;
      expect(err).toBeInstanceOf(MongoServerError);
      expect(err.code).toBe(2);
    }
    expect(await c.findOne({})).toBeNull();
  });

  it('skips the first n with {skip: n}, only for the named appName', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('fp_skip');
    const other = await target.client({ appName: 'victim' });
    // countDocuments is an aggregate; estimatedDocumentCount sends count.
    await fp({ skip: 1 }, { failCommands: ['count'], errorCode: 2, appName: 'victim' });
    const vc = other.db(c.dbName).collection('c');
    expect(await vc.estimatedDocumentCount()).toBe(0);
    const err = (await vc.estimatedDocumentCount().catch((e: unknown) => e)) as MongoServerError;
    expect(err.code).toBe(2);
    expect(await c.estimatedDocumentCount()).toBe(0);
  });

  it('closes the connection with closeConnection', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('fp_close');
    const noRetry = await target.client({ retryReads: false });
    await fp({ times: 1 }, { failCommands: ['find'], closeConnection: true });
    const err = await noRetry
      .db(c.dbName)
      .collection('c')
      .find({})
      .toArray()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoNetworkError);
    expect(await c.find({}).toArray()).toEqual([]);
  });

  it('delays with blockConnection/blockTimeMS and attaches errorLabels', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('fp_block');
    await fp({ times: 1 }, { failCommands: ['find'], blockConnection: true, blockTimeMS: 300 });
    const t0 = Date.now();
    await c.find({}).toArray();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    await fp({ times: 1 }, { failCommands: ['find'], errorCode: 2, errorLabels: ['CustomLabel'] });
    const err = (await c
      .find({})
      .toArray()
      .catch((e: unknown) => e)) as MongoServerError;
    expect(err.hasErrorLabel('CustomLabel')).toBe(true);
  });

  it('lets the driver retry a retryable write after a retryable error', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('fp_retry');
    await fp({ times: 1 }, { failCommands: ['insert'], errorCode: 91 });
    await c.insertOne({ _id: 1 } as never);
    expect(await c.countDocuments()).toBe(1);
  });
});

describe('automatic change stream resume (driver Change Streams spec: Resumable Error)', () => {
  async function resumeScenario(prefix: string, data: Record<string, unknown>): Promise<number[]> {
    const c = await coll(prefix);
    const cs = c.watch([], { maxAwaitTimeMS: 100, batchSize: 5 });
    await cs.tryNext();
    await c.insertMany(Array.from({ length: 10 }, (_, i) => ({ i })));
    const first = await take(cs, 7);
    await fp({ times: 1 }, { failCommands: ['getMore'], ...data });
    await c.insertMany(Array.from({ length: 10 }, (_, i) => ({ i: i + 10 })));
    const rest = await take(cs, 13);
    await cs.close();
    return [...first, ...rest].map(
      (e) => (e as unknown as { fullDocument: { i: number } }).fullDocument.i,
    );
  }
  const all = Array.from({ length: 20 }, (_, i) => i);

  it('resumes after the server closes the connection on getMore', async (t) => {
    if (!enabled) return t.skip();
    expect(await resumeScenario('ar_close', { closeConnection: true })).toEqual(all);
  });

  for (const [name, code] of [
    ['HostUnreachable', 6],
    ['ShutdownInProgress', 91],
    ['NotWritablePrimary', 10107],
    ['InterruptedDueToReplStateChange', 11602],
  ] as const) {
    it(`resumes after ${name} (${code}) on getMore, labelled ResumableChangeStreamError by the server`, async (t) => {
      if (!enabled) return t.skip();
      expect(await resumeScenario(`ar_${code}`, { errorCode: code })).toEqual(all);
    });
  }

  it('resumes on any error carrying the ResumableChangeStreamError label', async (t) => {
    if (!enabled) return t.skip();
    expect(
      await resumeScenario('ar_label', {
        errorCode: 280,
        errorLabels: ['ResumableChangeStreamError'],
      }),
    ).toEqual(all);
  });

  it('does not resume a non-resumable error', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('ar_fatal');
    const cs = c.watch([], { maxAwaitTimeMS: 100 });
    await cs.tryNext();
    await fp({ times: 1 }, { failCommands: ['getMore'], errorCode: 280 });
    await c.insertOne({ a: 1 });
    const err = (await take(cs, 1).catch((e: unknown) => e)) as MongoServerError;
    expect(err).toBeInstanceOf(MongoServerError);
    expect(err.code).toBe(280);
    await cs.close();
  });
});

describe('primary step-down (manual: replSetStepDown)', () => {
  it('refuses writes with NotWritablePrimary while stepped down, then is primary again', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('stepdown');
    await admin.command({ replSetStepDown: 1, secondaryCatchUpPeriodSecs: 0, force: true });
    const direct = await target.client({ directConnection: true, retryWrites: false });
    const err = (await direct
      .db(c.dbName)
      .command({ insert: 'c', documents: [{ a: 1 }] })
      .catch((e: unknown) => e)) as MongoServerError;
    expect(err).toBeInstanceOf(MongoServerError);
    expect(err.code).toBe(10107);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const hello = await direct.db('admin').command({ hello: 1 });
      if (hello.isWritablePrimary) break;
      if (Date.now() > deadline) throw new Error('never became primary again');
      await sleep(200);
    }
    await c.insertOne({ after: 1 });
    expect(await c.countDocuments()).toBe(1);
  });
});
