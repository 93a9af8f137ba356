/**
 * A transaction too large to hold at once (more events past a batch's end than the read-ahead
 * allows) is enqueued in parts: its events carry the transaction's id without index and count,
 * also after a stream resumed inside it; the transactions around it keep theirs.
 */
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startMongo, type RunningMongo } from '@changeq/stack';
import { ChangeSource, markTransactions, type Batch } from '../src/stream.js';

let mongo: RunningMongo;
let client: MongoClient;
beforeAll(async () => {
  mongo = await startMongo();
  client = new MongoClient(mongo.uri);
  await client.connect();
});
afterAll(async () => {
  await client?.close();
  await mongo?.stop();
});

const source = () =>
  new ChangeSource(
    client,
    {
      watch: { kind: 'database', db: 'bigtxn' },
      match: null,
      fullDocument: 'default',
      fullDocumentBeforeChange: 'off',
      expandedEvents: false,
      splitLargeEvents: true,
      pipeline: null,
      batchSize: 4,
      maxAwaitTimeMs: 100,
    },
    5, // read at most 5 events past a batch's end
  );

async function transaction(size: number): Promise<void> {
  const session = client.startSession();
  await session.withTransaction(async () => {
    await client
      .db('bigtxn')
      .collection('c')
      .insertMany(
        Array.from({ length: size }, (_, i) => ({ size, i })),
        { session },
      );
  });
  await session.endSession();
}

async function readAll(stream: ChangeSource, total: number): Promise<Batch[]> {
  const batches: Batch[] = [];
  for (let seen = 0, empty = 0; seen < total && empty < 20;) {
    const batch = await stream.next(3);
    if (batch.events.length === 0) empty++;
    else batches.push(batch);
    seen += batch.events.length;
  }
  return batches;
}

const marks = (batches: Batch[]) =>
  batches.flatMap((batch) => markTransactions(batch.events, batch.partialTime));

test('a transaction beyond the read-ahead is enqueued in parts, its events without index and count', async () => {
  const stream = source();
  try {
    stream.open({});
    await stream.next(3);
    await transaction(4);
    await transaction(30);
    await transaction(2);
    const batches = await readAll(stream, 36);
    const all = marks(batches);
    expect(all).toHaveLength(36);
    expect(all.slice(0, 4).map((m) => [m?.index, m?.count])).toEqual([
      [0, 4],
      [1, 4],
      [2, 4],
      [3, 4],
    ]);
    expect(all.slice(4, 34).every((m) => m !== null && m.index === null && m.count === null)).toBe(
      true,
    );
    expect(all.slice(34).map((m) => [m?.index, m?.count])).toEqual([
      [0, 2],
      [1, 2],
    ]);

    // Resumed from a position inside the large transaction: the rest of it carries no index
    // and count either (an index from the resumed position would be wrong).
    // The last batch ending inside it, so that what is left (fewer events than a batch reads)
    // would fit in one batch: only the resumed position can tell it is part of a transaction.
    let read = 0;
    let inside: Batch | undefined;
    let left = 0;
    for (const batch of batches) {
      read += batch.events.length;
      if (read > 4 && read < 34) [inside, left] = [batch, 34 - read];
    }
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(3 + 5);
    stream.open({ startAfter: inside!.token! });
    const rest = marks(await readAll(stream, 1)).filter((m) => m?.count !== 2);
    expect(rest.length).toBeGreaterThan(0);
    expect(rest.every((m) => m !== null && m.index === null && m.count === null)).toBe(true);
  } finally {
    await stream.close();
  }
});
