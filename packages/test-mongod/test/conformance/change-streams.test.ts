// Change streams: event shapes and stream levels, following the manual's "Change Streams" and
// "Change Events" pages (insert, update, replace, delete, drop, rename, dropDatabase,
// invalidate, create/createIndexes/modify with showExpandedEvents) and the driver Change
// Streams spec (response format, postBatchResumeToken).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MongoServerError, Timestamp } from 'mongodb';
import type { ChangeStreamDocument, Db, Document, MongoClient } from 'mongodb';
import { cursorId, startTarget, uniqueDb } from '../helpers/target.js';
import type { Target } from '../helpers/target.js';
import { sleep, take } from '../helpers/streams.js';

let target: Target;
let client: MongoClient;
let db: Db;

beforeAll(async () => {
  target = await startTarget();
  client = await target.client();
});
afterAll(async () => {
  await target.stop();
});

async function newDb(prefix: string): Promise<Db> {
  db = client.db(uniqueDb(prefix));
  return db;
}

type Ev = ChangeStreamDocument<Document> & Record<string, unknown>;

/** Short awaitData waits keep the suite quick; behaviour does not depend on them. */
const FAST = { maxAwaitTimeMS: 100 } as const;

describe('change events (manual: Change Events)', () => {
  it('emits insert, update, replace and delete with the documented fields', async () => {
    const d = await newDb('cs_events');
    const c = d.collection('c');
    await d.createCollection('c');
    const cs = c.watch([], FAST);
    await cs.tryNext();
    await c.insertOne({ _id: 1, a: 1, arr: [1] } as never);
    await c.updateOne(
      { _id: 1 } as never,
      { $set: { 'b.c': 2 }, $unset: { a: '' }, $push: { arr: 2 } } as never,
    );
    await c.replaceOne({ _id: 1 } as never, { z: 1 });
    await c.deleteOne({ _id: 1 } as never);
    const evs = (await take(cs, 4)) as Ev[];
    await cs.close();
    const [ins, upd, rep, del] = evs as [Ev, Ev, Ev, Ev];
    expect(ins.operationType).toBe('insert');
    expect(ins.fullDocument).toEqual({ _id: 1, a: 1, arr: [1] });
    expect(ins.ns).toEqual({ db: d.databaseName, coll: 'c' });
    expect(ins.documentKey).toEqual({ _id: 1 });
    expect(ins.clusterTime).toBeInstanceOf(Timestamp);
    expect(ins.wallTime).toBeInstanceOf(Date);
    expect(typeof (ins._id as { _data: unknown })._data).toBe('string');
    expect(upd.operationType).toBe('update');
    expect(upd.fullDocument).toBeUndefined();
    expect(upd.updateDescription).toEqual({
      updatedFields: { b: { c: 2 }, 'arr.1': 2 },
      removedFields: ['a'],
      truncatedArrays: [],
    });
    expect(rep.operationType).toBe('replace');
    expect(rep.fullDocument).toEqual({ _id: 1, z: 1 });
    expect(del.operationType).toBe('delete');
    expect(del.documentKey).toEqual({ _id: 1 });
    expect(del.fullDocument).toBeUndefined();
    const times = evs.map((e) => e.clusterTime as Timestamp);
    for (let i = 1; i < times.length; i++)
      expect(times[i]?.greaterThan(times[i - 1] as Timestamp)).toBe(true);
  });

  it('gives resume tokens that sort lexicographically in event order', async () => {
    const d = await newDb('cs_tokens');
    const c = d.collection('c');
    await d.createCollection('c');
    const cs = c.watch([], FAST);
    await cs.tryNext();
    await c.insertMany(Array.from({ length: 50 }, (_, i) => ({ i })));
    const session = client.startSession();
    await session.withTransaction(async () => {
      await c.insertOne({ t: 1 }, { session });
      await c.insertOne({ t: 2 }, { session });
    });
    await session.endSession();
    const evs = (await take(cs, 52)) as Ev[];
    await cs.close();
    const tokens = evs.map((e) => (e._id as { _data: string })._data);
    expect([...tokens].sort()).toEqual(tokens);
    expect(new Set(tokens).size).toBe(tokens.length);
  });

  it('applies $match, $project, $addFields/$set and $unset stages to events', async () => {
    const d = await newDb('cs_stages');
    const c = d.collection('c');
    await d.createCollection('c');
    const cs = c.watch(
      [
        {
          $match: {
            operationType: { $in: ['insert', 'update'] },
            $or: [{ 'fullDocument.x': { $gte: 2 } }, { operationType: 'update' }],
          },
        },
        { $addFields: { tag: 'seen', copy: '$fullDocument.x' } },
        { $set: { also: { $literal: 1 } } },
        { $unset: 'wallTime' },
        { $project: { clusterTime: 0 } },
      ],
      FAST,
    );
    await cs.tryNext();
    await c.insertMany([
      { _id: 1, x: 1 },
      { _id: 2, x: 2 },
    ] as never[]);
    await c.updateOne({ _id: 1 } as never, { $set: { x: 5 } });
    await c.deleteOne({ _id: 2 } as never);
    const evs = (await take(cs, 2)) as Ev[];
    await cs.close();
    expect(evs.map((e) => e.operationType)).toEqual(['insert', 'update']);
    expect(evs[0]).toMatchObject({ tag: 'seen', copy: 2, also: 1 });
    expect(evs[0]?.wallTime).toBeUndefined();
    expect(evs[0]?.clusterTime).toBeUndefined();
  });

  it('fails when a stage modifies the resume token _id', async () => {
    const d = await newDb('cs_idmod');
    const c = d.collection('c');
    await d.createCollection('c');
    const cs = c.watch([{ $set: { _id: 'nope' } }], FAST);
    await cs.tryNext();
    await c.insertOne({ a: 1 });
    const err = await take(cs, 1).catch((e: unknown) => e);
    await cs.close();
    expect(err).toBeInstanceOf(Error);
  });

  it('rejects stages that are not allowed after $changeStream and unknown $changeStream options', async () => {
    const d = await newDb('cs_badstage');
    const e1 = (await d
      .command({
        aggregate: 'c',
        pipeline: [{ $changeStream: {} }, { $group: { _id: null } }],
        cursor: {},
      })
      .catch((e: unknown) => e)) as MongoServerError;
    expect(e1).toBeInstanceOf(MongoServerError);
    const e2 = (await d
      .command({ aggregate: 'c', pipeline: [{ $changeStream: { bogus: 1 } }], cursor: {} })
      .catch((e: unknown) => e)) as MongoServerError;
    expect(e2.code).toBe(40415);
    const e3 = (await d
      .command({ aggregate: 'c', pipeline: [{ $match: {} }, { $changeStream: {} }], cursor: {} })
      .catch((e: unknown) => e)) as MongoServerError;
    expect(e3).toBeInstanceOf(MongoServerError);
  });
});

describe('stream levels (manual: Change Streams — Watch a Collection, Database, or Deployment)', () => {
  it('a database stream sees every collection of its database only', async () => {
    const d = await newDb('cs_dbstream');
    const other = client.db(uniqueDb('cs_other'));
    const cs = d.watch([], FAST);
    await cs.tryNext();
    await d.collection('a').insertOne({ n: 1 });
    await other.collection('x').insertOne({ n: 2 });
    await d.collection('b').insertOne({ n: 3 });
    const evs = (await take(cs, 2)) as Ev[];
    await cs.close();
    expect(evs.map((e) => (e.ns as { coll: string }).coll)).toEqual(['a', 'b']);
    await other.dropDatabase();
  });

  it('a deployment stream sees all databases and can filter on ns', async () => {
    const d1 = await newDb('cs_cluster1');
    const d2 = client.db(uniqueDb('cs_cluster2'));
    const cs = client.watch(
      [{ $match: { 'ns.db': { $in: [d1.databaseName, d2.databaseName] } } }],
      FAST,
    );
    await cs.tryNext();
    await d1.collection('a').insertOne({ n: 1 });
    await d2.collection('b').insertOne({ n: 2 });
    const evs = (await take(cs, 2)) as Ev[];
    await cs.close();
    expect(evs.map((e) => (e.ns as { db: string }).db)).toEqual([d1.databaseName, d2.databaseName]);
    await d2.dropDatabase();
  });

  it('shows create, createIndexes and modify only with showExpandedEvents', async () => {
    const d = await newDb('cs_expanded');
    const plain = d.watch([], FAST);
    const expanded = d.watch([], { ...FAST, showExpandedEvents: true });
    await plain.tryNext();
    await expanded.tryNext();
    await d.createCollection('c');
    await d.collection('c').createIndex({ a: 1 });
    await d.command({ collMod: 'c', changeStreamPreAndPostImages: { enabled: true } });
    await d.collection('c').insertOne({ a: 1 });
    const ex = (await take(expanded, 4)) as Ev[];
    expect(ex.map((e) => e.operationType)).toEqual(['create', 'createIndexes', 'modify', 'insert']);
    expect(ex[0]?.collectionUUID).toBeDefined();
    expect(ex[3]?.collectionUUID).toBeDefined();
    const pl = (await take(plain, 1)) as Ev[];
    expect(pl[0]?.operationType).toBe('insert');
    expect(pl[0]?.collectionUUID).toBeUndefined();
    await plain.close();
    await expanded.close();
  });
});

describe('modify events (manual: modify Event)', () => {
  it('every collMod is a modify event, even one that changes nothing, with stateBeforeChange', async () => {
    const d = await newDb('cs_modify');
    await d.createCollection('c');
    const cs = d.collection('c').watch([], { ...FAST, showExpandedEvents: true });
    await cs.tryNext();
    await d.command({ collMod: 'c' });
    await d.command({ collMod: 'c', changeStreamPreAndPostImages: { enabled: true } });
    const [empty, images] = (await take(cs, 2)) as [Ev, Ev];
    await cs.close();
    expect(empty.operationType).toBe('modify');
    expect(empty.operationDescription).toEqual({});
    const uuid = empty.collectionUUID;
    expect(uuid).toBeDefined();
    expect(empty.stateBeforeChange).toEqual({ collectionOptions: { uuid } });
    expect(images.operationType).toBe('modify');
    expect(images.operationDescription).toEqual({
      changeStreamPreAndPostImages: { enabled: true },
    });
    expect(images.stateBeforeChange).toEqual({ collectionOptions: { uuid } });
  });
});

describe('invalidation (manual: invalidate event; Change Streams — Resume)', () => {
  it('drop of the watched collection gives drop then invalidate and closes the cursor', async () => {
    const d = await newDb('cs_drop');
    const c = d.collection('c');
    await c.insertOne({ a: 1 });
    const cs = c.watch([], FAST);
    await cs.tryNext();
    await c.drop();
    const evs = (await take(cs, 2)) as Ev[];
    expect(evs.map((e) => e.operationType)).toEqual(['drop', 'invalidate']);
    expect(evs[0]?.ns).toEqual({ db: d.databaseName, coll: 'c' });
    expect(cs.closed).toBe(true);
  });

  it('rename of the watched collection gives rename (with to) then invalidate', async () => {
    const d = await newDb('cs_rename');
    const c = d.collection('c');
    await c.insertOne({ a: 1 });
    const cs = c.watch([], FAST);
    await cs.tryNext();
    await c.rename('d');
    const evs = (await take(cs, 2)) as Ev[];
    expect(evs.map((e) => e.operationType)).toEqual(['rename', 'invalidate']);
    expect(evs[0]?.to).toEqual({ db: d.databaseName, coll: 'd' });
    await cs.close();
  });

  it('dropDatabase gives drop per collection, dropDatabase, then invalidate on a database stream', async () => {
    const d = await newDb('cs_dropdb');
    await d.collection('a').insertOne({ a: 1 });
    await d.collection('b').insertOne({ a: 1 });
    const cs = d.watch([], FAST);
    const collStream = d.collection('a').watch([], FAST);
    await cs.tryNext();
    await collStream.tryNext();
    await d.dropDatabase();
    const evs = (await take(cs, 4)) as Ev[];
    expect(evs.map((e) => e.operationType)).toEqual(['drop', 'drop', 'dropDatabase', 'invalidate']);
    expect(
      evs
        .slice(0, 2)
        .map((e) => (e.ns as { coll: string }).coll)
        .sort(),
    ).toEqual(['a', 'b']);
    expect(evs[2]?.ns).toEqual({ db: d.databaseName });
    const cevs = (await take(collStream, 2)) as Ev[];
    expect(cevs.map((e) => e.operationType)).toEqual(['drop', 'invalidate']);
    await cs.close();
    await collStream.close();
  });

  it('resumeAfter an invalidate token fails with InvalidResumeToken; startAfter continues past it', async () => {
    const d = await newDb('cs_startafter');
    const c = d.collection('c');
    await c.insertOne({ a: 1 });
    const cs = c.watch([], FAST);
    await cs.tryNext();
    await c.drop();
    const evs = (await take(cs, 2)) as Ev[];
    const invalidateToken = (evs[1] as Ev)._id;
    await c.insertOne({ after: 1 });
    const bad = c.watch([], { ...FAST, resumeAfter: invalidateToken });
    const err = (await bad.tryNext().catch((e: unknown) => e)) as MongoServerError;
    expect(err).toBeInstanceOf(MongoServerError);
    expect(err.code).toBe(260);
    await bad.close();
    const good = c.watch([], { ...FAST, startAfter: invalidateToken });
    const next = (await take(good, 1)) as Ev[];
    expect(next[0]?.operationType).toBe('insert');
    expect(next[0]?.fullDocument).toMatchObject({ after: 1 });
    await good.close();
  });
});

describe('postBatchResumeToken and awaitData (driver Change Streams spec; manual: getMore)', () => {
  it('returns a postBatchResumeToken on every batch, also on empty ones', async () => {
    const d = await newDb('cs_pbrt');
    await d.createCollection('c');
    const agg = await d.command({ aggregate: 'c', pipeline: [{ $changeStream: {} }], cursor: {} });
    expect(agg.cursor.firstBatch).toEqual([]);
    const pbrt0 = agg.cursor.postBatchResumeToken;
    expect(typeof pbrt0._data).toBe('string');
    const more = await d.command({ getMore: cursorId(agg), collection: 'c', maxTimeMS: 100 });
    expect(more.cursor.nextBatch).toEqual([]);
    expect(typeof more.cursor.postBatchResumeToken._data).toBe('string');
    expect(more.cursor.postBatchResumeToken._data >= pbrt0._data).toBe(true);
    await d.collection('c').insertOne({ x: 1 });
    const more2 = await d.command({ getMore: cursorId(agg), collection: 'c', maxTimeMS: 1000 });
    expect(more2.cursor.nextBatch).toHaveLength(1);
    expect(more2.cursor.postBatchResumeToken._data >= more2.cursor.nextBatch[0]._id._data).toBe(
      true,
    );
    // Resuming from the empty-batch token neither skips nor replays.
    const resumed = d
      .collection('c')
      .watch([], { ...FAST, resumeAfter: more.cursor.postBatchResumeToken });
    const evs = (await take(resumed, 1)) as Ev[];
    expect(evs[0]?.fullDocument).toMatchObject({ x: 1 });
    await resumed.close();
    await d.command({ killCursors: 'c', cursors: [cursorId(agg)] });
  });

  it('a batch that ends at the newest event carries that event’s _id as postBatchResumeToken', async () => {
    // So a driver that caches the token after a batch holds the last event's _id (driver spec:
    // "cache the change stream resume token"). Against a shared server, another writer may slip
    // an entry in after the event (then a high-water mark past it is right), so this retries.
    const d = await newDb('cs_pbrt_last');
    await d.createCollection('c');
    const agg = await d.command({ aggregate: 'c', pipeline: [{ $changeStream: {} }], cursor: {} });
    let exact = 0;
    for (let attempt = 0; attempt < 5 && exact === 0; attempt++) {
      await d.collection('c').insertOne({ attempt });
      const more = await d.command({ getMore: cursorId(agg), collection: 'c', maxTimeMS: 1000 });
      const batch = more.cursor.nextBatch as { _id: { _data: string } }[];
      expect(batch).toHaveLength(1);
      const pbrt = more.cursor.postBatchResumeToken as { _data: string };
      expect(pbrt._data >= (batch[0]?._id._data ?? '')).toBe(true);
      if (pbrt._data === batch[0]?._id._data) exact++;
    }
    expect(exact).toBe(1);
    await d.command({ killCursors: 'c', cursors: [cursorId(agg)] });
    // And through the driver: the cached resumeToken is the event's _id.
    const cs = d.collection('c').watch([], FAST);
    await cs.tryNext();
    let same = false;
    for (let attempt = 0; attempt < 5 && !same; attempt++) {
      await d.collection('c').insertOne({ attempt });
      const [ev] = await take(cs, 1);
      same = JSON.stringify(cs.resumeToken) === JSON.stringify(ev?._id);
    }
    await cs.close();
    expect(same).toBe(true);
  });

  it('blocks a getMore until an event arrives, and honours maxTimeMS when none does', async () => {
    const d = await newDb('cs_await');
    await d.createCollection('c');
    const agg = await d.command({ aggregate: 'c', pipeline: [{ $changeStream: {} }], cursor: {} });
    let t0 = Date.now();
    const empty = await d.command({ getMore: cursorId(agg), collection: 'c', maxTimeMS: 300 });
    const waited = Date.now() - t0;
    expect(empty.cursor.nextBatch).toEqual([]);
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(3000);
    t0 = Date.now();
    const pending = d.command({ getMore: cursorId(agg), collection: 'c', maxTimeMS: 5000 });
    await sleep(100);
    await client.db(d.databaseName).collection('c').insertOne({ y: 1 });
    const got = await pending;
    expect(got.cursor.nextBatch).toHaveLength(1);
    expect(Date.now() - t0).toBeLessThan(2000);
    await d.command({ killCursors: 'c', cursors: [cursorId(agg)] });
  });

  it('honours batchSize on getMore', async () => {
    const d = await newDb('cs_batch');
    await d.createCollection('c');
    const agg = await d.command({
      aggregate: 'c',
      pipeline: [{ $changeStream: {} }],
      cursor: { batchSize: 0 },
    });
    await d.collection('c').insertMany(Array.from({ length: 10 }, (_, i) => ({ i })));
    const b1 = await d.command({ getMore: cursorId(agg), collection: 'c', batchSize: 3 });
    expect(b1.cursor.nextBatch).toHaveLength(3);
    expect(b1.cursor.postBatchResumeToken).toEqual(b1.cursor.nextBatch[2]._id);
    const b2 = await d.command({ getMore: cursorId(agg), collection: 'c' });
    expect(b2.cursor.nextBatch).toHaveLength(7);
    await d.command({ killCursors: 'c', cursors: [cursorId(agg)] });
  });
});

describe('resuming (manual: Resume a Change Stream)', () => {
  it('resumeAfter continues right after the token', async () => {
    const d = await newDb('cs_resume');
    const c = d.collection('c');
    await d.createCollection('c');
    const cs = c.watch([], FAST);
    await cs.tryNext();
    await c.insertMany([{ i: 0 }, { i: 1 }, { i: 2 }]);
    const evs = (await take(cs, 3)) as Ev[];
    await cs.close();
    const r = c.watch([], { ...FAST, resumeAfter: evs[0]?._id });
    const rest = (await take(r, 2)) as Ev[];
    expect(rest.map((e) => (e.fullDocument as { i: number }).i)).toEqual([1, 2]);
    await r.close();
  });

  it('startAtOperationTime includes events at that cluster time', async () => {
    const d = await newDb('cs_startat');
    const c = d.collection('c');
    await d.createCollection('c');
    const cs = c.watch([], FAST);
    await cs.tryNext();
    await c.insertMany([{ i: 0 }, { i: 1 }]);
    const evs = (await take(cs, 2)) as Ev[];
    await cs.close();
    const r = c.watch([], { ...FAST, startAtOperationTime: evs[1]?.clusterTime as Timestamp });
    const rest = (await take(r, 1)) as Ev[];
    expect((rest[0]?.fullDocument as { i: number }).i).toBe(1);
    await r.close();
  });

  it('rejects an unparseable resume token with InvalidResumeToken (260) or a parse error', async () => {
    const d = await newDb('cs_badtoken');
    await d.createCollection('c');
    const err = (await d
      .command({
        aggregate: 'c',
        pipeline: [{ $changeStream: { resumeAfter: { _data: 'not-a-token' } } }],
        cursor: {},
      })
      .catch((e: unknown) => e)) as MongoServerError;
    expect(err).toBeInstanceOf(MongoServerError);
    // Real servers report their KeyString decoding failure under varying codes; ours uses 260.
    if (!target.external) expect(err.code).toBe(260);
  });

  it('rejects more than one start option', async () => {
    const d = await newDb('cs_twostarts');
    await d.createCollection('c');
    const hello = await client.db('admin').command({ hello: 1 });
    const err = (await d
      .command({
        aggregate: 'c',
        pipeline: [
          {
            $changeStream: {
              startAtOperationTime: hello.operationTime,
              resumeAfter: { _data: '00' },
            },
          },
        ],
        cursor: {},
      })
      .catch((e: unknown) => e)) as MongoServerError;
    expect(err).toBeInstanceOf(MongoServerError);
  });
});
