// The `_id` index must not change any answer: every command gives the same documents, in the
// same (natural) order, and writes the same change events in the same order, whether it fetched
// them by `_id` or scanned the collection. `{$or: [filter]}` is the same filter to the matcher
// but never served by the index, so it is the scan to compare with. Natural order is this
// server's own (a real MongoDB returns an _id-index lookup in index order), hence not in the
// conformance suite.
import { describe, expect, it } from 'vitest';
import { Binary, Decimal128, Double, Int32, Long, ObjectId } from 'mongodb';
import type { ClientSession, Collection, Document, MongoClient } from 'mongodb';
import { useTestResources } from '../helpers/resources.js';
const { start } = useTestResources('cq-mongod-idindex-');

const oid = new ObjectId('65f000000000000000000001');
/** _ids of many BSON types, some of which compare equal to filters of another type. */
const IDS: unknown[] = [
  new Int32(5),
  new Double(2.5),
  Long.fromNumber(7),
  Decimal128.fromString('9.00'),
  'str',
  oid,
  { a: 1, b: 2 },
  { b: 2, a: 1 },
  new Date(1_700_000_000_000),
  true,

  new Binary(Buffer.from('bin')),
  new Int32(1),
  new Int32(3),
  new Int32(4),
];

/** Filters the index serves, each tried as is and as `{$or: [filter]}`. */
const FILTERS: Document[] = [
  { _id: new Double(5) },
  { _id: Long.fromNumber(9) },
  { _id: { $eq: new Double(7) } },
  { _id: { $in: [new Int32(4), 'str', oid, null, Decimal128.fromString('1'), 'absent'] } },
  { _id: { $in: [{ b: 2, a: 1 }, { a: Long.fromNumber(1), b: new Double(2) }, true] } },
  { _id: { $in: [new Int32(3), new Int32(1), new Int32(5)] }, n: { $gte: 0 } },
  { _id: { $in: [new Int32(3), new Int32(1), new Int32(5)] }, n: { $gte: 1 } },
  { $and: [{ _id: { $in: [1, 3, 4, 5] } }, { _id: { $in: [5, 4, 3] } }] },
  { _id: new Binary(Buffer.from('bin')) },
  { _id: new Date(1_700_000_000_000) },
  { _id: { $in: [] } },
];

/** Fills a collection so that natural order differs from insertion order of the ids. */
async function seed(c: Collection<Document>, session?: ClientSession): Promise<void> {
  await c.insertMany(IDS.map((_id, i) => ({ _id, n: i % 3 })) as never[], { session });
  // Delete and re-insert two documents: they move to the end of natural order.
  for (const id of [new Int32(5), 'str']) {
    await c.deleteOne({ _id: id } as never, { session });
    await c.insertOne({ _id: id, n: 1 } as never, { session });
  }
  await c.updateOne({ _id: new Int32(1) } as never, { $set: { n: 2 } }, { session });
}

function scanned(filter: Document): Document {
  return { $or: [filter] };
}

async function pair(client: MongoClient, name: string): Promise<Collection<Document>[]> {
  const db = client.db('idindex');
  const a = db.collection(`${name}_index`);
  const b = db.collection(`${name}_scan`);
  await seed(a);
  await seed(b);
  return [a, b];
}

/** Events of a change stream on `coll` opened before `write` and read to the end of it. */
async function eventsOf(
  coll: Collection<Document>,
  write: () => Promise<unknown>,
): Promise<unknown[]> {
  const stream = coll.watch([], { fullDocument: 'updateLookup', maxAwaitTimeMS: 50 });
  expect(await stream.tryNext()).toBeNull();
  await write();
  const out: unknown[] = [];
  for (;;) {
    const e = await stream.tryNext();
    if (!e) break;
    const { _id, clusterTime, wallTime, ns, ...rest } = e as Document;
    void [_id, clusterTime, wallTime, ns];
    out.push(rest);
  }
  await stream.close();
  return out;
}

describe('the _id index gives the same answers as a collection scan', () => {
  it('find (with and without sort, skip, limit, batchSize), count, distinct, aggregate', async () => {
    const { c: client } = await start({});
    const [a, b] = (await pair(client, 'reads')) as [Collection<Document>, Collection<Document>];
    for (const f of FILTERS) {
      const label = JSON.stringify(f);
      const indexed = await a.find(f).toArray();
      expect(indexed, label).toEqual(await b.find(scanned(f)).toArray());
      expect(await a.find(f).toArray(), label).toEqual(await a.find(scanned(f)).toArray());
      for (const opts of [{ sort: { n: -1 } }, { skip: 1, limit: 2 }, { batchSize: 1 }]) {
        expect(await a.find(f, opts as never).toArray(), label).toEqual(
          await a.find(scanned(f), opts as never).toArray(),
        );
      }
      expect(await a.countDocuments(f), label).toBe(indexed.length);
      expect(await a.distinct('n', f), label).toEqual(await a.distinct('n', scanned(f)));
      expect(await a.aggregate([{ $match: f }, { $project: { n: 1 } }]).toArray(), label).toEqual(
        await a.aggregate([{ $match: scanned(f) }, { $project: { n: 1 } }]).toArray(),
      );
      expect(await a.findOne(f), label).toEqual(await a.findOne(scanned(f)));
    }
  });

  it('updateOne/updateMany/replaceOne/findOneAndUpdate/deletes: same documents, same events, same order', async () => {
    const { c: client } = await start({});
    for (const f of FILTERS) {
      const label = JSON.stringify(f);
      const [a, b] = (await pair(client, `w${FILTERS.indexOf(f)}`)) as [
        Collection<Document>,
        Collection<Document>,
      ];
      const writes = async (c: Collection<Document>, q: Document): Promise<unknown[]> => [
        await c.updateOne(q, { $inc: { n: 10 } }),
        await c.findOneAndUpdate(q, { $set: { m: 1 } }, { returnDocument: 'after' }),
        await c.findOneAndUpdate(q, { $set: { m: 2 } }, { sort: { n: 1 } }),
        await c.updateMany(q, { $inc: { n: 100 } }),
        await c.replaceOne(q, { r: true }),
        await c.findOneAndDelete(q),
        await c.deleteOne(q),
        await c.deleteMany(q),
      ];
      let ra: unknown[] = [];
      let rb: unknown[] = [];
      const ea = await eventsOf(a, async () => (ra = await writes(a, f)));
      const eb = await eventsOf(b, async () => (rb = await writes(b, scanned(f))));
      expect(ra, label).toEqual(rb);
      expect(ea, label).toEqual(eb);
      expect(await a.find().toArray(), label).toEqual(await b.find().toArray());
    }
  });

  it('inside a transaction: the transaction’s own writes, in the order a scan lists them', async () => {
    const { c: client } = await start({});
    const [a, b] = (await pair(client, 'txn')) as [Collection<Document>, Collection<Document>];
    for (const c of [a, b]) {
      const session = client.startSession();
      try {
        session.startTransaction();
        await c.insertOne({ _id: 100, n: 0 } as never, { session });
        await c.deleteOne({ _id: new Int32(4) } as never, { session });
        await c.insertOne({ _id: new Int32(4), n: 9 } as never, { session });
        await c.updateOne({ _id: new Int32(1) } as never, { $set: { t: 1 } }, { session });
        await c.insertOne({ _id: 99, n: 0 } as never, { session });
        await c.deleteOne({ _id: new Int32(3) } as never, { session });
        const f: Document = {
          _id: { $in: [99, 100, new Int32(4), new Int32(3), new Int32(1), 5] },
        };
        const indexed = await c.find(f, { session }).toArray();
        expect(indexed).toEqual(await c.find(scanned(f), { session }).toArray());
        // Committed documents in their place (5 was re-inserted last by seed(), 4 was deleted
        // and re-inserted by this transaction), then the transaction's new ones.
        expect(indexed.map((d) => d._id)).toEqual([1, 4, 5, 100, 99]);
        expect(await c.countDocuments(f, { session })).toBe(5);
        await session.commitTransaction();
      } finally {
        await session.endSession();
      }
    }
    expect(await a.find().toArray()).toEqual(await b.find().toArray());
  });
});
