// CRUD and query behaviour, following the manual's CRUD, query operator, update operator and
// "Comparison/Sort Order" pages, and the driver CRUD spec for write results and errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Decimal128,
  Double,
  Int32,
  Long,
  MongoBulkWriteError,
  MongoServerError,
  ObjectId,
} from 'mongodb';
import type { Collection, Db, MongoClient } from 'mongodb';
import { startTarget, uniqueDb } from '../helpers/target.js';
import type { Target } from '../helpers/target.js';

let target: Target;
let client: MongoClient;
let db: Db;

beforeAll(async () => {
  target = await startTarget();
  client = await target.client();
  db = client.db(uniqueDb('crud'));
});
afterAll(async () => {
  await db.dropDatabase().catch(() => undefined);
  await target.stop();
});

async function fresh(name: string): Promise<Collection> {
  const c = db.collection(name);
  await c.drop().catch(() => undefined);
  return c;
}

describe('insert and the _id index (manual: insert command, unique _id index)', () => {
  it('rejects duplicate _id values that compare equal across numeric types with E11000', async () => {
    const c = await fresh('dups');
    await c.insertOne({ _id: 1 as never });
    for (const id of [
      new Double(1.0),
      Long.fromNumber(1),
      Decimal128.fromString('1'),
      new Int32(1),
    ]) {
      const err = await c.insertOne({ _id: id as never }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MongoServerError);
      expect((err as MongoServerError).code).toBe(11000);
      expect((err as MongoServerError).message).toMatch(
        /^E11000 duplicate key error collection: .*\.dups index: _id_ dup key: \{ _id: 1 \}/,
      );
    }
    await c.insertOne({ _id: '1' as never });
    expect(await c.countDocuments()).toBe(2);
  });

  it('reports write errors with their index in an unordered bulk insert', async () => {
    const c = await fresh('bulk');
    const err = (await c
      .insertMany([{ _id: 1 }, { _id: 1 }, { _id: 2 }, { _id: 2 }] as never[], { ordered: false })
      .catch((e: unknown) => e)) as MongoBulkWriteError;
    expect(err).toBeInstanceOf(MongoBulkWriteError);
    expect(err.result.insertedCount).toBe(2);
    expect(err.writeErrors).toHaveLength(2);
    const indexes = (Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors]).map(
      (e) => e.index,
    );
    expect(indexes).toEqual([1, 3]);
  });

  it('stops at the first error in an ordered insert', async () => {
    const c = await fresh('ordered');
    const err = (await c
      .insertMany([{ _id: 1 }, { _id: 1 }, { _id: 2 }] as never[])
      .catch((e: unknown) => e)) as MongoBulkWriteError;
    expect(err.result.insertedCount).toBe(1);
    expect(await c.countDocuments()).toBe(1);
  });

  it('stores _id first and keeps numeric types', async () => {
    const c = await fresh('types');
    await c.insertOne({
      a: new Double(1),
      b: new Int32(2),
      c: Long.fromNumber(3),
      _id: 'x',
    } as never);
    const [raw] = await c.find({}, { promoteValues: false }).toArray();
    expect(Object.keys(raw as object)[0]).toBe('_id');
    expect((raw as Record<string, { _bsontype: string }>).a?._bsontype).toBe('Double');
    expect((raw as Record<string, { _bsontype: string }>).b?._bsontype).toBe('Int32');
    expect((raw as Record<string, { _bsontype: string }>).c?._bsontype).toBe('Long');
  });
});

describe('query operators (manual: Query and Projection Operators)', () => {
  let c: Collection;
  beforeAll(async () => {
    c = await fresh('query');
    await c.insertMany([
      {
        _id: 1,
        n: 1,
        s: 'apple',
        tags: ['red', 'fruit'],
        sub: { x: 1 },
        arr: [{ k: 1 }, { k: 5 }],
      },
      { _id: 2, n: 2.5, s: 'banana', tags: ['yellow', 'fruit'], sub: { x: 2 } },
      { _id: 3, n: Long.fromNumber(10), s: 'cherry', tags: [], nul: null },
      { _id: 4, s: 10, arr: [{ k: 7 }] },
    ] as never[]);
  });
  const ids = async (filter: object): Promise<unknown[]> =>
    (await c.find(filter, { sort: { _id: 1 } }).toArray()).map((d) => d._id);

  it('compares numbers by value across types and brackets by type', async () => {
    expect(await ids({ n: { $gt: 1 } })).toEqual([2, 3]);
    expect(await ids({ n: { $gte: 1, $lt: 10 } })).toEqual([1, 2]);
    expect(await ids({ s: { $gt: 5 } })).toEqual([4]);
    expect(await ids({ n: Long.fromNumber(1) })).toEqual([1]);
  });

  it('supports $eq $ne $in $nin $exists $type $regex $not $and $or $nor', async () => {
    expect(await ids({ s: { $in: ['apple', 'cherry'] } })).toEqual([1, 3]);
    expect(await ids({ s: { $nin: ['apple', 'cherry'] } })).toEqual([2, 4]);
    expect(await ids({ n: { $exists: false } })).toEqual([4]);
    expect(await ids({ n: { $ne: 1 } })).toEqual([2, 3, 4]);
    expect(await ids({ s: { $type: 'string' } })).toEqual([1, 2, 3]);
    expect(await ids({ n: { $type: 'number' } })).toEqual([1, 2, 3]);
    expect(await ids({ s: { $regex: '^b' } })).toEqual([2]);
    expect(await ids({ s: /^A/i })).toEqual([1]);
    expect(await ids({ s: { $not: /^a/ } })).toEqual([2, 3, 4]);
    expect(await ids({ $or: [{ _id: 1 }, { s: 'cherry' }] })).toEqual([1, 3]);
    expect(await ids({ $and: [{ tags: 'fruit' }, { n: { $gt: 2 } }] })).toEqual([2]);
    expect(await ids({ $nor: [{ tags: 'fruit' }] })).toEqual([3, 4]);
  });

  it('matches null against missing fields and explicit nulls', async () => {
    expect(await ids({ nul: null })).toEqual([1, 2, 3, 4]);
    expect(await ids({ nul: { $type: 'null' } })).toEqual([3]);
    expect(await ids({ n: null })).toEqual([4]);
  });

  it('traverses arrays: element match, $elemMatch, $size, $all, dotted paths', async () => {
    expect(await ids({ tags: 'fruit' })).toEqual([1, 2]);
    expect(await ids({ tags: ['red', 'fruit'] })).toEqual([1]);
    expect(await ids({ tags: { $size: 0 } })).toEqual([3]);
    expect(await ids({ tags: { $all: ['fruit', 'yellow'] } })).toEqual([2]);
    expect(await ids({ 'arr.k': 5 })).toEqual([1]);
    expect(await ids({ 'arr.k': { $gt: 4, $lt: 6 } })).toEqual([1]);
    expect(await ids({ arr: { $elemMatch: { k: { $gt: 4, $lt: 6 } } } })).toEqual([1]);
    expect(await ids({ 'arr.0.k': 7 })).toEqual([4]);
    expect(await ids({ 'sub.x': 2 })).toEqual([2]);
  });

  it('sorts by the BSON comparison order, arrays by their min/max element', async () => {
    const mixed = await fresh('sortorder');
    const oid = new ObjectId();
    const date = new Date(0);
    await mixed.insertMany([
      { _id: 1, v: 'str' },
      { _id: 2, v: 5 },
      { _id: 3, v: null },
      { _id: 4, v: { a: 1 } },
      { _id: 5, v: [0, 9] },
      { _id: 6, v: oid },
      { _id: 7, v: true },
      { _id: 8, v: date },
      { _id: 9 },
    ] as never[]);
    const asc = (await mixed.find({}, { sort: { v: 1, _id: 1 } }).toArray()).map((d) => d._id);
    expect(asc).toEqual([3, 9, 5, 2, 1, 4, 6, 7, 8]);
    const desc = (await mixed.find({}, { sort: { v: -1, _id: 1 } }).toArray()).map((d) => d._id);
    expect(desc).toEqual([8, 7, 6, 4, 1, 5, 2, 3, 9]);
  });

  it('applies projection, skip, limit and batches through getMore', async () => {
    const big = await fresh('big');
    await big.insertMany(
      Array.from({ length: 250 }, (_, i) => ({ _id: i, i, pad: 'x'.repeat(10) })) as never[],
    );
    const docs = await big
      .find({ i: { $gte: 10 } }, { projection: { pad: 0 }, skip: 5, limit: 200, batchSize: 7 })
      .toArray();
    expect(docs).toHaveLength(200);
    expect(docs[0]).toEqual({ _id: 15, i: 15 });
    const incl = await big.findOne({ _id: 3 } as never, { projection: { i: 1, _id: 0 } });
    expect(incl).toEqual({ i: 3 });
    expect(await big.countDocuments({ i: { $lt: 100 } })).toBe(100);
    expect(await big.estimatedDocumentCount()).toBe(250);
  });
});

describe('update operators (manual: Update Operators)', () => {
  it('applies $set $unset $inc $push/$each $addToSet $pull $min $max $setOnInsert on dotted paths', async () => {
    const c = await fresh('upd');
    await c.insertOne({ _id: 1, a: { b: 1 }, n: 1, tags: ['a'], gone: true, low: 5 } as never);
    const r = await c.updateOne(
      { _id: 1 } as never,
      {
        $set: { 'a.c': 2, x: 'y' },
        $unset: { gone: '' },
        $inc: { n: 2 },
        $push: { tags: { $each: ['b', 'c'] } },
        $min: { low: 3 },
        $max: { high: 9 },
        $setOnInsert: { never: true },
      } as never,
    );
    expect(r.matchedCount).toBe(1);
    expect(r.modifiedCount).toBe(1);
    await c.updateOne({ _id: 1 } as never, { $addToSet: { tags: 'a' } } as never);
    await c.updateOne({ _id: 1 } as never, { $pull: { tags: 'b' } } as never);
    expect(await c.findOne({ _id: 1 } as never)).toEqual({
      _id: 1,
      a: { b: 1, c: 2 },
      n: 3,
      tags: ['a', 'c'],
      low: 3,
      x: 'y',
      high: 9,
    });
  });

  it('reports no modification for a no-op update and supports upsert and multi', async () => {
    const c = await fresh('upd2');
    await c.insertMany([
      { _id: 1, k: 1 },
      { _id: 2, k: 1 },
    ] as never[]);
    const noop = await c.updateOne({ _id: 1 } as never, { $set: { k: 1 } });
    expect(noop.modifiedCount).toBe(0);
    const multi = await c.updateMany({ k: 1 }, { $inc: { k: 1 } });
    expect(multi.modifiedCount).toBe(2);
    const up = await c.updateOne(
      { _id: 'new', tag: 'q' } as never,
      { $set: { v: 1 } },
      { upsert: true },
    );
    expect(up.upsertedId).toBe('new');
    expect(await c.findOne({ _id: 'new' } as never)).toEqual({ _id: 'new', tag: 'q', v: 1 });
    const rep = await c.replaceOne({ _id: 2 } as never, { z: 1 });
    expect(rep.modifiedCount).toBe(1);
    expect(await c.findOne({ _id: 2 } as never)).toEqual({ _id: 2, z: 1 });
  });

  it('rejects changing _id and conflicting paths', async () => {
    const c = await fresh('upd3');
    await c.insertOne({ _id: 1, a: 1 } as never);
    const e1 = (await c
      .updateOne({ _id: 1 } as never, { $set: { _id: 2 } } as never)
      .catch((e: unknown) => e)) as MongoServerError;
    expect(e1.code).toBe(66);
    const e2 = (await c
      .updateOne({ _id: 1 } as never, { $set: { a: 1 }, $inc: { a: 1 } } as never)
      .catch((e: unknown) => e)) as MongoServerError;
    expect(e2.code).toBe(40);
    const e3 = (await c
      .updateOne({ _id: 1 } as never, { $inc: { a: 'x' } } as never)
      .catch((e: unknown) => e)) as MongoServerError;
    expect(e3.code).toBe(14);
  });

  it('supports findOneAndUpdate/Replace/Delete', async () => {
    const c = await fresh('fam');
    await c.insertMany([
      { _id: 1, v: 1 },
      { _id: 2, v: 2 },
    ] as never[]);
    const before = await c.findOneAndUpdate({ _id: 1 } as never, { $inc: { v: 10 } });
    expect(before).toEqual({ _id: 1, v: 1 });
    const after = await c.findOneAndUpdate(
      { _id: 1 } as never,
      { $inc: { v: 10 } },
      { returnDocument: 'after' },
    );
    expect(after).toEqual({ _id: 1, v: 21 });
    const up = await c.findOneAndUpdate(
      { _id: 3 } as never,
      { $set: { v: 3 } },
      { upsert: true, returnDocument: 'after' },
    );
    expect(up).toEqual({ _id: 3, v: 3 });
    const rep = await c.findOneAndReplace({ v: 2 }, { w: 1 }, { returnDocument: 'after' });
    expect(rep).toEqual({ _id: 2, w: 1 });
    const del = await c.findOneAndDelete({}, { sort: { _id: -1 } });
    expect(del).toEqual({ _id: 3, v: 3 });
    const res = await c.findOneAndUpdate(
      { _id: 1 } as never,
      { $set: { q: 1 } },
      { includeResultMetadata: true },
    );
    expect(res.lastErrorObject).toMatchObject({ n: 1, updatedExisting: true });
  });

  it('deletes one or many', async () => {
    const c = await fresh('del');
    await c.insertMany([{ k: 1 }, { k: 1 }, { k: 2 }]);
    expect((await c.deleteOne({ k: 1 })).deletedCount).toBe(1);
    expect((await c.deleteMany({})).deletedCount).toBe(2);
  });
});

describe('aggregation, count and distinct (manual: Aggregation Pipeline Stages)', () => {
  it('runs $match $group $sort $project $skip $limit $count', async () => {
    const c = await fresh('agg');
    await c.insertMany([
      { g: 'a', v: 1 },
      { g: 'a', v: 2 },
      { g: 'b', v: 5 },
      { g: 'c', v: 1 },
    ]);
    const out = await c
      .aggregate([
        { $match: { v: { $gte: 1 } } },
        {
          $group: {
            _id: '$g',
            total: { $sum: '$v' },
            n: { $sum: 1 },
            max: { $max: '$v' },
            vs: { $push: '$v' },
          },
        },
        { $sort: { total: -1 } },
        { $project: { _id: 0, g: '$_id', total: 1, n: 1, max: 1, vs: 1 } },
      ])
      .toArray();
    expect(out).toEqual([
      { total: 5, n: 1, max: 5, vs: [5], g: 'b' },
      { total: 3, n: 2, max: 2, vs: [1, 2], g: 'a' },
      { total: 1, n: 1, max: 1, vs: [1], g: 'c' },
    ]);
    expect(await c.aggregate([{ $skip: 1 }, { $limit: 2 }, { $count: 'n' }]).toArray()).toEqual([
      { n: 2 },
    ]);
    expect((await c.distinct('g')).sort()).toEqual(['a', 'b', 'c']);
  });

  it('rejects an unknown stage with 40324', async () => {
    const c = await fresh('agg2');
    const err = (await c
      .aggregate([{ $noSuchStage: {} }])
      .toArray()
      .catch((e: unknown) => e)) as MongoServerError;
    expect(err.code).toBe(40324);
  });
});

describe('catalog commands (manual: Database Commands — Administration)', () => {
  it('creates, lists, renames and drops collections', async () => {
    const d = client.db(uniqueDb('catalog'));
    await d.createCollection('one');
    const err = (await d
      .createCollection('one', { capped: true, size: 4096 })
      .catch((e: unknown) => e)) as MongoServerError;
    expect(err.code).toBe(48);
    await d.collection('two').insertOne({ a: 1 });
    const infos = await d.listCollections().toArray();
    expect(infos.map((i) => i.name).sort()).toEqual(['one', 'two']);
    const one = infos.find((i) => i.name === 'one') as Record<string, unknown>;
    expect(one.type).toBe('collection');
    expect((one.info as { uuid: unknown }).uuid).toBeDefined();
    expect(one.options).toEqual({});
    expect(await d.listCollections({ name: 'two' }, { nameOnly: true }).toArray()).toEqual([
      { name: 'two', type: 'collection' },
    ]);
    await d.renameCollection('two', 'three');
    expect((await d.listCollections().toArray()).map((i) => i.name).sort()).toEqual([
      'one',
      'three',
    ]);
    await d.collection('three').insertOne({ b: 1 });
    await d.renameCollection('one', 'three', { dropTarget: true });
    expect((await d.listCollections().toArray()).map((i) => i.name)).toEqual(['three']);
    const dbs = await client.db('admin').admin().listDatabases({ nameOnly: true });
    expect(dbs.databases.map((x) => x.name)).toContain(d.databaseName);
    expect(await d.collection('three').drop()).toBe(true);
    await d.dropDatabase();
    const after = await client.db('admin').admin().listDatabases();
    expect(after.databases.map((x) => x.name)).not.toContain(d.databaseName);
  });

  it('creates, lists and drops indexes; only _id is unique-enforced', async () => {
    const c = await fresh('idx');
    const name = await c.createIndex({ a: 1, b: -1 });
    expect(name).toBe('a_1_b_-1');
    const names = (await c.listIndexes().toArray()).map((i) => i.name);
    expect(names).toEqual(['_id_', 'a_1_b_-1']);
    await c.dropIndex('a_1_b_-1');
    expect((await c.listIndexes().toArray()).map((i) => i.name)).toEqual(['_id_']);
    const err = (await c.dropIndex('_id_').catch((e: unknown) => e)) as MongoServerError;
    expect(err).toBeInstanceOf(MongoServerError);
    const missing = (await db
      .collection('nope_missing')
      .listIndexes()
      .toArray()
      .catch((e: unknown) => e)) as MongoServerError;
    expect(missing.code).toBe(26);
  });

  it('sets changeStreamPreAndPostImages with collMod and reports it in listCollections', async () => {
    const c = await fresh('cm');
    await db.createCollection('cm');
    await db.command({ collMod: 'cm', changeStreamPreAndPostImages: { enabled: true } });
    const [info] = await db.listCollections({ name: 'cm' }).toArray();
    expect((info as { options: unknown }).options).toEqual({
      changeStreamPreAndPostImages: { enabled: true },
    });
    await c.drop();
  });
});
