import { Decimal128, Long, MaxKey, MinKey, MongoClient, ObjectId, Timestamp, UUID } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startMongo, type RunningMongo } from '@changeq/stack';
import { idAfter, idAtOrBefore } from '../src/id-order.js';

let mongo: RunningMongo;
beforeAll(async () => {
  mongo = await startMongo();
});
afterAll(async () => {
  await mongo?.stop();
});

test('walking a collection by _id with idAfter visits every document of every type once, in BSON order', async () => {
  const client = new MongoClient(mongo.uri);
  try {
    const coll = client.db('order').collection('mixed');
    const ids: unknown[] = [
      // no null: the driver replaces a null _id with a fresh ObjectId
      new MinKey(),
      -5,
      1.5,
      Long.fromNumber(2),
      Decimal128.fromString('3.25'),
      'a',
      'b',
      { x: 1 },
      new UUID(),
      new ObjectId(),
      false,
      true,
      new Date(0),
      new Date(1),
      new Timestamp({ t: 1, i: 1 }),
      new MaxKey(),
    ];
    await coll.insertMany(ids.map((_id, i) => ({ _id, i })) as never);
    const seen: number[] = [];
    let last: unknown = undefined;
    for (let round = 0; round < 100; round += 1) {
      const filter = round === 0 ? {} : idAfter(last);
      const batch = await coll.find(filter).sort({ _id: 1 }).limit(2).toArray();
      if (batch.length === 0) break;
      seen.push(...batch.map((doc) => doc.i as number));
      last = batch[batch.length - 1]!._id;
    }
    expect(seen).toEqual(ids.map((_, i) => i));
    const upTo = await coll.find(idAtOrBefore('b')).sort({ _id: 1 }).toArray();
    expect(upTo.map((doc) => doc.i)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  } finally {
    await client.close();
  }
});
