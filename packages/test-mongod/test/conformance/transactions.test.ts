// Multi-document transactions (manual: Transactions; Change Events — clusterTime, lsid,
// txnNumber): writes and their change events appear only at commit, share one clusterTime and
// carry lsid/txnNumber; abort discards them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MongoServerError } from 'mongodb';
import type { Collection, MongoClient, Timestamp } from 'mongodb';
import { startTarget, uniqueDb } from '../helpers/target.js';
import type { Target } from '../helpers/target.js';
import { take } from '../helpers/streams.js';

let target: Target;
let client: MongoClient;

beforeAll(async () => {
  target = await startTarget();
  client = await target.client();
});
afterAll(async () => {
  await target.stop();
});

async function coll(prefix: string): Promise<Collection> {
  const d = client.db(uniqueDb(prefix));
  await d.createCollection('c');
  return d.collection('c');
}

type Ev = Record<string, unknown>;

describe('transactions', () => {
  it('commit makes writes and events visible together with one clusterTime, lsid and txnNumber', async () => {
    const c = await coll('txn_commit');
    await c.insertOne({ _id: 'pre', v: 0 } as never);
    const cs = c.watch([], { maxAwaitTimeMS: 100 });
    await cs.tryNext();
    const session = client.startSession();
    session.startTransaction();
    await c.insertOne({ _id: 'a' } as never, { session });
    await c.updateOne({ _id: 'pre' } as never, { $set: { v: 1 } }, { session });
    await c.deleteOne({ _id: 'a' } as never, { session });
    await c.insertOne({ _id: 'b' } as never, { session });
    // Inside: own writes visible. Outside: nothing yet, and no events.
    expect((await c.find({}, { session }).toArray()).map((d) => d._id).sort()).toEqual([
      'b',
      'pre',
    ]);
    expect(await c.findOne({ _id: 'b' } as never)).toBeNull();
    expect(await cs.tryNext()).toBeNull();
    await session.commitTransaction();
    const evs = (await take(cs, 4)) as unknown as Ev[];
    await session.endSession();
    await cs.close();
    expect(evs.map((e) => e.operationType)).toEqual(['insert', 'update', 'delete', 'insert']);
    const t0 = evs[0]?.clusterTime as Timestamp;
    for (const e of evs) {
      expect((e.clusterTime as Timestamp).equals(t0)).toBe(true);
      expect(e.lsid).toBeDefined();
      expect(e.txnNumber).toBeDefined();
    }
    expect(await c.findOne({ _id: 'pre' } as never)).toEqual({ _id: 'pre', v: 1 });
  });

  it('abort discards writes and produces no events', async () => {
    const c = await coll('txn_abort');
    const cs = c.watch([], { maxAwaitTimeMS: 100 });
    await cs.tryNext();
    const session = client.startSession();
    session.startTransaction();
    await c.insertOne({ _id: 'x' } as never, { session });
    await session.abortTransaction();
    await session.endSession();
    await c.insertOne({ _id: 'after' } as never);
    const [ev] = (await take(cs, 1)) as unknown as Ev[];
    expect(ev?.documentKey).toEqual({ _id: 'after' });
    expect(await c.countDocuments()).toBe(1);
    await cs.close();
  });

  it('withTransaction runs the callback and commits', async () => {
    const c = await coll('txn_with');
    const session = client.startSession();
    await session.withTransaction(async () => {
      await c.insertOne({ a: 1 }, { session });
      await c.insertOne({ a: 2 }, { session });
    });
    await session.endSession();
    expect(await c.countDocuments()).toBe(2);
  });

  it('a duplicate key inside a transaction aborts it', async () => {
    const c = await coll('txn_dup');
    await c.insertOne({ _id: 1 } as never);
    const session = client.startSession();
    session.startTransaction();
    await c.insertOne({ _id: 2 } as never, { session });
    const err = (await c
      .insertOne({ _id: 1 } as never, { session })
      .catch((e: unknown) => e)) as MongoServerError;
    expect(err.code).toBe(11000);
    const commit = (await session.commitTransaction().catch((e: unknown) => e)) as MongoServerError;
    expect(commit).toBeInstanceOf(MongoServerError);
    expect(commit.code).toBe(251);
    await session.endSession();
    expect(await c.countDocuments()).toBe(1);
  });
});
