// Multi-document transactions (manual: Transactions; Change Events — clusterTime, lsid,
// txnNumber): writes and their change events appear only at commit, share one clusterTime and
// carry lsid/txnNumber; abort discards them. changeq's ingest relies on a transaction's events
// arriving one after another, with no empty batch among them however small the batches (a commit
// is visible at once), and on writes outside transactions (retryable ones too) carrying neither.
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

  it('a transaction larger than a batch arrives whole and in one run: no empty batch, no other write inside', async () => {
    const d = client.db(uniqueDb('txn_run'));
    const [a, b] = [d.collection('a'), d.collection('b')];
    await d.createCollection('a');
    await d.createCollection('b');
    const cs = d.watch([], { batchSize: 5, maxAwaitTimeMS: 100 });
    await cs.tryNext();
    const session = client.startSession();
    await session.withTransaction(async () => {
      for (let i = 0; i < 23; i++) await (i % 2 ? a : b).insertOne({ i }, { session });
    });
    await session.endSession();
    await a.insertOne({ outside: 1 }); // a retryable write (the driver's default)
    const events: Ev[] = [];
    const deadline = Date.now() + 10_000;
    let emptyInside = 0;
    while (events.length < 24 && Date.now() < deadline) {
      const event = (await cs.tryNext()) as Ev | null;
      if (event) events.push(event);
      else if (events.length > 0 && events.length < 23) emptyInside++;
    }
    await cs.close();
    expect(events).toHaveLength(24);
    expect(emptyInside).toBe(0);
    const txn = events.slice(0, 23);
    const first = txn[0]!;
    for (const e of txn) {
      expect(e.lsid).toEqual(first.lsid);
      expect(e.txnNumber).toEqual(first.txnNumber);
      expect((e.clusterTime as Timestamp).equals(first.clusterTime as Timestamp)).toBe(true);
    }
    expect(txn.map((e) => (e.fullDocument as { i: number }).i)).toEqual(
      Array.from({ length: 23 }, (_, i) => i),
    );
    expect(events[23]?.lsid).toBeUndefined();
    expect(events[23]?.txnNumber).toBeUndefined();
  });
});
