// Fault injection with the server's `failCommand` and `failGetMoreAfterCursorCheckout` fail
// points (mongod --setParameter enableTestCommands=1), the error labels a 4.4+ server attaches
// (ErrorLabelBuilder: ResumableChangeStreamError only for errors raised after a getMore checked
// out its change stream cursor, SERVER-46091; NonResumableChangeStreamError for 280/286), and the
// driver's automatic change-stream resume from the Change Streams spec ("Resumable Error",
// "Resume Process"). Skipped only against an external server that rejects configureFailPoint.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MongoNetworkError, MongoServerError } from 'mongodb';
import type { Collection, Db, Document, Long, MongoClient } from 'mongodb';
import { cursorId, failPointsAvailable, startTarget, uniqueDb } from '../helpers/target.js';
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
  if (!enabled) return;
  await admin.command({ configureFailPoint: 'failCommand', mode: 'off' });
  await admin.command({ configureFailPoint: 'failGetMoreAfterCursorCheckout', mode: 'off' });
});
afterAll(async () => {
  await target.stop();
});

const fp = (mode: unknown, data: Record<string, unknown>): Promise<unknown> =>
  admin.command({ configureFailPoint: 'failCommand', mode, data });
const afterCheckout = (mode: unknown, data: Record<string, unknown> = {}): Promise<unknown> =>
  admin.command({ configureFailPoint: 'failGetMoreAfterCursorCheckout', mode, data });

/** A raw change stream cursor on `c` (collection-level), so replies can be read as they are. */
async function rawStream(c: Collection): Promise<Long> {
  const r = await client.db(c.dbName).command({
    aggregate: c.collectionName,
    pipeline: [{ $changeStream: {} }],
    cursor: {},
  });
  return cursorId(r);
}

async function getMoreError(c: Collection, id: Long): Promise<MongoServerError> {
  const err = await client
    .db(c.dbName)
    .command({ getMore: id, collection: c.collectionName, maxTimeMS: 100 })
    .then((r: Document) => new Error(`getMore succeeded: ${JSON.stringify(r)}`))
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(MongoServerError);
  return err as MongoServerError;
}

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

  // A real server raises these after the cursor was checked out (failGetMoreAfterCursorCheckout
  // is how the driver specification injects them), and then labels them itself.
  for (const [name, code] of [
    ['HostUnreachable', 6],
    ['ShutdownInProgress', 91],
    ['NotWritablePrimary', 10107],
    ['InterruptedDueToReplStateChange', 11602],
  ] as const) {
    it(`resumes after ${name} (${code}) raised after cursor checkout, labelled ResumableChangeStreamError by the server`, async (t) => {
      if (!enabled) return t.skip();
      const c = await coll(`ar_${code}`);
      const cs = c.watch([], { maxAwaitTimeMS: 100, batchSize: 5 });
      await cs.tryNext();
      await c.insertMany(Array.from({ length: 10 }, (_, i) => ({ i })));
      const first = await take(cs, 7);
      const set = (await afterCheckout({ times: 1 }, { errorCode: code })) as { count: number };
      await c.insertMany(Array.from({ length: 10 }, (_, i) => ({ i: i + 10 })));
      const rest = await take(cs, 13);
      await cs.close();
      // The fault did strike (configureFailPoint answers how often the point was entered).
      const off = (await afterCheckout('off')) as { count: number };
      expect(off.count - set.count).toBe(1);
      expect(
        [...first, ...rest].map(
          (e) => (e as unknown as { fullDocument: { i: number } }).fullDocument.i,
        ),
      ).toEqual(all);
    });
  }

  it('does not resume a resumable code injected with failCommand: it is raised before cursor checkout and carries no label', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('ar_unlabelled');
    const cs = c.watch([], { maxAwaitTimeMS: 100 });
    await cs.tryNext();
    await fp({ times: 1 }, { failCommands: ['getMore'], errorCode: 6 });
    await c.insertOne({ a: 1 });
    const err = (await take(cs, 1).catch((e: unknown) => e)) as MongoServerError;
    expect(err).toBeInstanceOf(MongoServerError);
    expect(err.code).toBe(6);
    expect(err.hasErrorLabel('ResumableChangeStreamError')).toBe(false);
    await cs.close();
  });

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

// Codes here are resumable but not "state change" errors, so the driver adds no ResetPool label
// of its own and the labels seen are exactly the server's.
describe('error labels on getMore (ErrorLabelBuilder; SERVER-46091)', () => {
  it('failCommand errors on a change stream getMore get no ResumableChangeStreamError', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('lbl_fc');
    const id = await rawStream(c);
    await fp({ times: 1 }, { failCommands: ['getMore'], errorCode: 234 });
    const err = await getMoreError(c, id);
    expect(err.code).toBe(234);
    expect(err.errorLabels).toEqual([]);
  });

  it('failCommand errors with code 280 are labelled NonResumableChangeStreamError, unless errorLabels is given', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('lbl_fc280');
    await fp({ times: 1 }, { failCommands: ['getMore'], errorCode: 280 });
    let err = await getMoreError(c, await rawStream(c));
    expect(err.code).toBe(280);
    expect(err.errorLabels).toEqual(['NonResumableChangeStreamError']);
    await fp({ times: 1 }, { failCommands: ['getMore'], errorCode: 280, errorLabels: [] });
    err = await getMoreError(c, await rawStream(c));
    expect(err.errorLabels).toEqual([]);
  });

  it('failGetMoreAfterCursorCheckout: resumable codes get ResumableChangeStreamError and the cursor is gone', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('lbl_fgm');
    const id = await rawStream(c);
    await afterCheckout({ times: 1 }, { errorCode: 234 });
    const err = await getMoreError(c, id);
    expect(err.code).toBe(234);
    expect(err.message).toBe("Hit the 'failGetMoreAfterCursorCheckout' failpoint");
    expect(err.errorLabels).toEqual(['ResumableChangeStreamError']);
    // A getMore that fails after checking out its cursor deletes it.
    expect((await getMoreError(c, id)).code).toBe(43);
  });

  it('failGetMoreAfterCursorCheckout: other codes are not resumable; 280 is NonResumable; no code is InternalError', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('lbl_fgm_other');
    await afterCheckout({ times: 1 }, { errorCode: 216 });
    let err = await getMoreError(c, await rawStream(c));
    expect(err.code).toBe(216);
    expect(err.errorLabels).toEqual([]);
    await afterCheckout({ times: 1 }, { errorCode: 280 });
    err = await getMoreError(c, await rawStream(c));
    expect(err.errorLabels).toEqual(['NonResumableChangeStreamError']);
    await afterCheckout({ times: 1 });
    err = await getMoreError(c, await rawStream(c));
    expect(err.code).toBe(1);
    expect(err.errorLabels).toEqual([]);
  });

  it('failGetMoreAfterCursorCheckout: a find cursor getMore gets no change stream label', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('lbl_fgm_find');
    await c.insertMany([{ a: 1 }, { a: 2 }, { a: 3 }]);
    const r = await client.db(c.dbName).command({ find: 'c', batchSize: 1 });
    await afterCheckout({ times: 1 }, { errorCode: 234 });
    const err = await getMoreError(c, cursorId(r));
    expect(err.code).toBe(234);
    expect(err.errorLabels).toEqual([]);
  });

  it('failGetMoreAfterCursorCheckout honours skip, times and appName', async (t) => {
    if (!enabled) return t.skip();
    const c = await coll('lbl_fgm_modes');
    const d = client.db(c.dbName);
    const id = await rawStream(c);
    await afterCheckout({ skip: 1 }, { errorCode: 234 });
    await d.command({ getMore: id, collection: 'c', maxTimeMS: 10 });
    expect((await getMoreError(c, id)).code).toBe(234);
    await afterCheckout('off');
    await afterCheckout({ times: 2 }, { errorCode: 7 });
    expect((await getMoreError(c, await rawStream(c))).code).toBe(7);
    expect((await getMoreError(c, await rawStream(c))).code).toBe(7);
    const after = await rawStream(c);
    await d.command({ getMore: after, collection: 'c', maxTimeMS: 10 });
    await afterCheckout('alwaysOn', { errorCode: 7, appName: 'someone-else' });
    await d.command({ getMore: after, collection: 'c', maxTimeMS: 10 });
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
