// Reads and writes by `_id` go through the `_id` index (manual: "Indexes" — the default _id
// index; "Comparison/Sort Order" — numbers compare by value across types; "Field Order" —
// embedded documents compare field by field in order; "Update Operators" — _id is immutable;
// serverStatus metrics.queryExecutor.scannedObjects counts documents a query examined).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Decimal128, Double, Int32, Long, MongoServerError, ObjectId } from 'mongodb';
import type { Collection, Db, Document, MongoClient } from 'mongodb';
import { startTarget, uniqueDb } from '../helpers/target.js';
import type { Target } from '../helpers/target.js';
let target: Target;
let client: MongoClient;
let db: Db;

beforeAll(async () => {
  target = await startTarget();
  client = await target.client();
  db = client.db(uniqueDb('idindex'));
});
afterAll(async () => {
  await db.dropDatabase().catch(() => undefined);
  await target.stop();
});

async function fresh(name: string): Promise<Collection<Document>> {
  const c = db.collection(name);
  await c.drop().catch(() => undefined);
  return c;
}

async function code(p: Promise<unknown>): Promise<unknown> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MongoServerError);
  return (err as MongoServerError).code;
}

describe('_id values of different numeric types that compare equal', () => {
  const ones = [new Int32(1), new Double(1), Long.fromNumber(1), Decimal128.fromString('1.0')];

  it('find, count, aggregate and distinct by _id find the document whatever type is asked', async () => {
    const c = await fresh('numeric');
    await c.insertMany([
      { _id: new Int32(1), v: 'one' },
      { _id: 2, v: 'two' },
    ] as never[]);
    for (const id of ones) {
      expect(await c.find({ _id: id } as never).toArray()).toEqual([{ _id: 1, v: 'one' }]);
      expect(await c.countDocuments({ _id: { $in: [id, 'x'] } } as never)).toBe(1);
      expect(await c.aggregate([{ $match: { _id: { $eq: id } } }]).toArray()).toHaveLength(1);
      expect(await c.distinct('v', { _id: id } as never)).toEqual(['one']);
    }
  });

  it('updateOne, findOneAndUpdate and deleteOne address the same document', async () => {
    const c = await fresh('numericWrites');
    await c.insertOne({ _id: Long.fromNumber(1), n: 0 } as never);
    for (const id of ones) {
      const r = await c.updateOne({ _id: id } as never, { $inc: { n: 1 } });
      expect([r.matchedCount, r.modifiedCount]).toEqual([1, 1]);
    }
    const before = await c.findOneAndUpdate(
      { _id: new Double(1) } as never,
      { $inc: { n: 1 } },
      { returnDocument: 'before' },
    );
    expect(before?.n).toBe(4);
    // The stored _id keeps the type it was inserted with.
    const stored = await client
      .db(db.databaseName)
      .collection('numericWrites')
      .findOne({}, { promoteLongs: false });
    expect(stored?._id).toBeInstanceOf(Long);
    expect((await c.deleteOne({ _id: Decimal128.fromString('1') } as never)).deletedCount).toBe(1);
    expect(await c.countDocuments()).toBe(0);
  });
});

describe('documents whose _id is an embedded document', () => {
  it('match by value with fields in the same order, numbers by value', async () => {
    const c = await fresh('objectIds');
    await c.insertMany([
      { _id: { a: 1, b: 'x' }, v: 1 },
      { _id: { b: 'x', a: 1 }, v: 2 },
      { _id: { a: { deep: [1, 2] } }, v: 3 },
    ] as never[]);
    expect(await c.find({ _id: { a: 1, b: 'x' } } as never).toArray()).toEqual([
      { _id: { a: 1, b: 'x' }, v: 1 },
    ]);
    expect((await c.findOne({ _id: { b: 'x', a: 1 } } as never))?.v).toBe(2);
    expect((await c.findOne({ _id: { a: Long.fromNumber(1), b: 'x' } } as never))?.v).toBe(1);
    expect((await c.findOne({ _id: { a: { deep: [1, new Double(2)] } } } as never))?.v).toBe(3);
    expect(await c.findOne({ _id: { a: 1 } } as never)).toBeNull();
    const u = await c.updateOne({ _id: { b: 'x', a: 1 } } as never, { $set: { v: 20 } });
    expect(u.matchedCount).toBe(1);
    expect((await c.deleteOne({ _id: { a: 1, b: 'x' } } as never)).deletedCount).toBe(1);
    expect((await c.find({}, { sort: { v: 1 } }).toArray()).map((d) => d.v)).toEqual([3, 20]);
  });
});

describe('updates that try to change _id (manual: _id is immutable)', () => {
  it('fail with 66 ImmutableField and leave the document as it was', async () => {
    const c = await fresh('immutable');
    await c.insertOne({ _id: 1, x: 1 } as never);
    expect(await code(c.updateOne({ _id: 1 } as never, { $set: { _id: 2 } }))).toBe(66);
    expect(await code(c.updateOne({ _id: 1 } as never, { $inc: { _id: 1 } } as never))).toBe(66);
    expect(await code(c.updateOne({ _id: 1 } as never, { $unset: { _id: '' } } as never))).toBe(66);
    expect(await code(c.replaceOne({ _id: 1 } as never, { _id: 2, x: 2 }))).toBe(66);
    expect(
      await code(c.findOneAndUpdate({ _id: 1 } as never, { $set: { _id: 'other' } } as never)),
    ).toBe(66);
    expect(await c.find().toArray()).toEqual([{ _id: 1, x: 1 }]);
    // A replacement without _id keeps the stored one.
    await c.replaceOne({ _id: 1 } as never, { x: 3 });
    expect(await c.find().toArray()).toEqual([{ _id: 1, x: 3 }]);
  });
});

describe('upsert and multi-document writes by _id', () => {
  it('upserts the queried _id once, then updates it', async () => {
    const c = await fresh('upsert');
    const first = await c.updateOne({ _id: 'u1' } as never, { $set: { n: 1 } }, { upsert: true });
    expect(first.upsertedId).toBe('u1');
    const second = await c.updateOne({ _id: 'u1' } as never, { $set: { n: 2 } }, { upsert: true });
    expect([second.upsertedCount, second.matchedCount, second.modifiedCount]).toEqual([0, 1, 1]);
    expect(await c.find().toArray()).toEqual([{ _id: 'u1', n: 2 }]);
  });

  it('updateMany and deleteMany with $in touch exactly the listed documents', async () => {
    const c = await fresh('multi');
    await c.insertMany(Array.from({ length: 10 }, (_, i) => ({ _id: i, n: 0 })) as never[]);
    const u = await c.updateMany({ _id: { $in: [1, 3, 3, 99, new Double(5)] } } as never, {
      $inc: { n: 1 },
    });
    expect([u.matchedCount, u.modifiedCount]).toEqual([3, 3]);
    const changed = await c.find({ n: 1 }, { sort: { _id: 1 } }).toArray();
    expect(changed.map((d) => d._id)).toEqual([1, 3, 5]);
    const d = await c.deleteMany({ _id: { $in: [0, 1, 2, 'x'] }, n: 0 } as never);
    expect(d.deletedCount).toBe(2);
    expect(await c.countDocuments()).toBe(8);
  });
});

describe('deletes while a cursor is open (manual: cursors are not isolated)', () => {
  it('the cursor goes on without errors or duplicates and returns every surviving document', async () => {
    for (const filter of [{}, { _id: { $in: Array.from({ length: 12 }, (_, i) => i) } }]) {
      const c = await fresh('cursorDeletes');
      await c.insertMany(Array.from({ length: 12 }, (_, i) => ({ _id: i })) as never[]);
      const cursor = c.find(filter as never, { batchSize: 3 });
      const seen: number[] = [];
      for (let i = 0; i < 3; i++) seen.push(Number((await cursor.next())?._id));
      // Delete what was already read and part of what was not.
      await c.deleteMany({ _id: { $in: [...seen, 5, 6, 11] } } as never);
      await c.deleteOne({ _id: 8 } as never);
      for await (const d of cursor) seen.push(Number(d._id));
      expect(new Set(seen).size).toBe(seen.length);
      for (const survivor of [3, 4, 7, 9, 10]) expect(seen).toContain(survivor);
    }
  });
});

describe('serverStatus metrics.queryExecutor.scannedObjects', () => {
  it('grows by about one document per _id operation, not by the collection size', async () => {
    const c = await fresh('scanned');
    const ids = Array.from({ length: 2000 }, () => new ObjectId());
    await c.insertMany(ids.map((_id, i) => ({ _id, i })));
    const scanned = async (): Promise<number> => {
      const s = await client.db('admin').command({ serverStatus: 1 });
      return Number(s.metrics.queryExecutor.scannedObjects);
    };
    const start = await scanned();
    const id = ids[1000] as ObjectId;
    await c.findOne({ _id: id });
    await c.find({ _id: { $in: [ids[1] as ObjectId, ids[2] as ObjectId] } }).toArray();
    await c.updateOne({ _id: id }, { $set: { x: 1 } });
    await c.updateMany(
      { _id: { $in: [ids[3] as ObjectId, ids[4] as ObjectId] } },
      { $set: { x: 1 } },
    );
    await c.findOneAndUpdate({ _id: id }, { $set: { x: 2 } });
    await c.countDocuments({ _id: id });
    await c.aggregate([{ $match: { _id: id } }, { $project: { i: 1 } }]).toArray();
    await c.deleteOne({ _id: id });
    await c.findOneAndDelete({ _id: ids[5] as ObjectId });
    await c.deleteMany({ _id: { $in: [ids[6] as ObjectId, ids[7] as ObjectId] } });
    // A single collection scan would add 2,000; allow other activity on a shared server.
    expect((await scanned()) - start).toBeLessThan(200);
    const beforeScan = await scanned();
    await c.find({ i: 1999 }).toArray();
    expect((await scanned()) - beforeScan).toBeGreaterThanOrEqual(1990);
  });
});
