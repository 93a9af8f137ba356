/**
 * Whole events and whole transactions through the reader thread (StreamReader, as built) against
 * the test server: a batch never ends inside a transaction, however small the server's batches
 * and the ingest's `max`, so every job of a transaction carries its count; each batch's token
 * resumes exactly after it (an event read past a transaction's end is read again); an event over
 * 16 MB arrives as fragments and leaves as one job; a read that fails between fragments is
 * reopened from the token before the first and reads the event whole.
 */
import { MongoClient, type Document } from 'mongodb';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodeEvent, loadWorkersConfig, type EventJobData } from '@changeq/shared';
import type { IngestConfig } from '@changeq/source';
import { startMongo, type RunningMongo } from '@changeq/stack';
import { workersFile } from '@changeq/testkit';
import { StreamReader } from '../src/reader/stream-reader.js';
import type { ReadBatch } from '../src/ports.js';

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

function reader(db: string, batchSize: number): StreamReader {
  const config = {
    mongodbUri: mongo.uri,
    connectTimeoutMs: 2000,
    workers: loadWorkersConfig(workersFile(`workers = ["alpha", "bravo", "charlie"]\n`)),
    watch: { kind: 'database', db },
    fullDocument: 'default',
    fullDocumentBeforeChange: 'whenAvailable',
    expandedEvents: false,
    splitLargeEvents: true,
    pipeline: null,
    match: null,
    batchSize,
    maxAwaitTimeMs: 150,
  } as unknown as IngestConfig;
  return new StreamReader(
    config,
    'changeq-whole-events-test',
    new URL('../dist/reader/thread.js', import.meta.url),
  );
}

const data = (json: string) => JSON.parse(json) as EventJobData;
const positionOf = (batch: ReadBatch) => batch.jobs.map((job) => job.position);

/** Reads until `total` events came (or `limit` empty batches in a row). */
async function readAll(stream: StreamReader, max: number, total: number): Promise<ReadBatch[]> {
  const batches: ReadBatch[] = [];
  let seen = 0;
  let empty = 0;
  while (seen < total && empty < 20) {
    const batch = await stream.next(max);
    if (batch.count === 0) empty++;
    else {
      empty = 0;
      batches.push(batch);
      seen += batch.count;
    }
  }
  return batches;
}

async function transaction(db: string, size: number): Promise<void> {
  const session = client.startSession();
  try {
    await session.withTransaction(async () => {
      for (let i = 0; i < size; i++) {
        await client
          .db(db)
          .collection(`c${i % 3}`)
          .insertOne({ size, i }, { session });
      }
    });
  } finally {
    await session.endSession();
  }
}

describe('transactions', () => {
  test('a batch holds whole transactions; each job carries its id, index and count', async () => {
    const db = 'wt_txn';
    await client.db(db).collection('c0').insertOne({ warm: true });
    const stream = reader(db, 4);
    try {
      await stream.connect();
      await stream.open({});
      await stream.next(3);
      const sizes = [1, 9, 2, 30, 5];
      for (const size of sizes) {
        await transaction(db, size);
        await client.db(db).collection('c1').insertOne({ between: size }); // outside any transaction
      }
      const total = sizes.reduce((a, b) => a + b, 0) + sizes.length;
      const batches = await readAll(stream, 3, total);
      const jobs = batches.flatMap((batch) => batch.jobs.map((job) => data(job.json)));
      expect(jobs).toHaveLength(total);
      // In stream order: each transaction's events, then the insert after it.
      let at = 0;
      const ids = new Set<string>();
      for (const size of sizes) {
        const group = jobs.slice(at, at + size);
        const id = group[0]?.txn?.id;
        expect(id).toMatch(
          /^\{"lsid":\{"id":\{"\$binary".*"txnNumber":\{"\$number(Int|Long)":"\d+"\}\}$/,
        );
        ids.add(id!);
        expect(group.map((job) => job.txn)).toEqual(
          group.map((_, index) => ({ id, index, count: size })),
        );
        expect(group.every((job) => (job.event as Document).txnNumber !== undefined)).toBe(true);
        expect(jobs[at + size]?.txn).toBeUndefined();
        at += size + 1;
      }
      expect(ids.size).toBe(sizes.length);
      // No batch ends inside a transaction, though the server's batches hold 4 events and max is 3.
      for (const batch of batches) {
        const counts = new Map<string, number>();
        for (const job of batch.jobs) {
          const txn = data(job.json).txn;
          if (txn) counts.set(txn.id, (counts.get(txn.id) ?? 0) + 1);
        }
        for (const [id, n] of counts) {
          expect(n, `batch holds all of ${id}`).toBe(
            data(batch.jobs.find((job) => data(job.json).txn?.id === id)!.json).txn?.count,
          );
        }
      }
      expect(batches.some((batch) => batch.count > 3)).toBe(true);
      // Each batch's token resumes right after its last event, also when an event was read past it.
      const positions = batches.map(positionOf);
      for (let i = 0; i + 1 < batches.length; i++) {
        const token = batches[i]!.token!;
        await stream.open({ startAfter: token });
        const again = await stream.next(3);
        expect(positionOf(again)[0], `the batch after ${i}`).toBe(positions[i + 1]![0]);
      }
    } finally {
      await stream.shutdown();
    }
  });
});

const MB = 1024 * 1024;

describe('events over 16 MB', () => {
  test('fragments leave as one job; a read failing between fragments reads the event again whole', async () => {
    const db = 'wt_large';
    await client
      .db(db)
      .createCollection('big', { changeStreamPreAndPostImages: { enabled: true } });
    const big = client.db(db).collection('big');
    await big.insertOne({ _id: 1 as never, value: 'a'.repeat(10 * MB) });
    const stream = reader(db, 100);
    try {
      await stream.connect();
      await stream.open({});
      await stream.next(10);
      const before = (await stream.next(10)).token;
      // The update event holds the old value (pre-image) and the new one: about 20 MB.
      await big.updateOne({ _id: 1 as never }, { $set: { value: 'b'.repeat(10 * MB) } });
      await big.insertOne({ _id: 2 as never, small: true });
      const check = (batch: ReadBatch) => {
        const job = batch.jobs[0]!;
        const event = decodeEvent(data(job.json)) as Document;
        expect(event.splitEvent).toBeUndefined();
        expect(event.operationType).toBe('update');
        expect((event.fullDocumentBeforeChange as Document).value).toBe('a'.repeat(10 * MB));
        expect((event.updateDescription as Document).updatedFields.value).toBe('b'.repeat(10 * MB));
        // The job id and the position are the last fragment's: resuming after it is after the event.
        expect((event._id as { _data: string })._data).toBe(job.position);
        return batch;
      };
      const [whole] = await readAll(stream, 10, 1);
      check(whole!);
      await stream.open({ startAfter: { _data: whole!.jobs[0]!.position } });
      const [after] = await readAll(stream, 10, 1);
      expect((decodeEvent(data(after!.jobs[0]!.json)) as Document).documentKey).toEqual({ _id: 2 });

      // The reopened stream's aggregate answers with the first fragment; the getMore for the
      // second fails with an error the driver does not resume.
      await stream.open({ startAfter: before! });
      await client.db('admin').command({
        configureFailPoint: 'failCommand',
        mode: { times: 1 },
        data: { failCommands: ['getMore'], errorCode: 2 },
      });
      const failed = await stream.next(10).then(
        () => null,
        (error: Error) => error,
      );
      await client.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
      expect(failed?.message).toBeDefined();
      await stream.open({ startAfter: before! });
      const [again] = await readAll(stream, 10, 1);
      check(again!);
      expect(again!.jobs[0]!.jobId).toBe(whole!.jobs[0]!.jobId);
    } finally {
      await stream.shutdown();
    }
  });
});
