/**
 * The reader thread (StreamReader, as built) against a real server: it reads and plans batches,
 * answers a ping beside a read that waits for changes, reports its own connection's state, and
 * hands errors over classified. /readyz of a running ingest asks it (issue 12's readiness item).
 */
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Router, loadWorkersConfig } from '@changeq/shared';
import { SnapshotReader, type IngestConfig } from '@changeq/source';
import { startMongo, startRedis, type RunningMongo, type RunningRedis } from '@changeq/stack';
import { freePort, waitFor, workersFile } from '@changeq/testkit';
import { StreamReader } from '../src/reader/stream-reader.js';
import type { ReadError } from '../src/ports.js';
import { startIngest } from './helpers.js';

let mongo: RunningMongo;
beforeAll(async () => {
  mongo = await startMongo();
});
afterAll(async () => {
  await mongo?.stop();
});

function reader(maxAwaitTimeMs: number): StreamReader {
  const config = {
    mongodbUri: mongo.uri,
    connectTimeoutMs: 2000,
    workers: loadWorkersConfig(workersFile(`workers = ["alpha", "bravo"]\n`)),
    watch: { kind: 'collection', db: 'rd', coll: 'c' },
    fullDocument: 'default',
    fullDocumentBeforeChange: 'off',
    expandedEvents: false,
    splitLargeEvents: true,
    pipeline: null,
    match: null,
    batchSize: 100,
    maxAwaitTimeMs,
  } as unknown as IngestConfig;
  // The thread runs as built (a worker thread loads JavaScript).
  return new StreamReader(
    config,
    'changeq-ingest-reader-test',
    new URL('../dist/reader/thread.js', import.meta.url),
  );
}

describe('the reader thread', () => {
  test('reads and plans batches, and answers a ping beside a read waiting for changes', async () => {
    const stream = reader(1500);
    const client = new MongoClient(mongo.uri);
    try {
      await stream.connect();
      await stream.open({});
      expect((await stream.next(10)).count).toBe(0); // opened at "now"
      await client
        .db('rd')
        .collection('c')
        .insertMany([{ n: 1 }, { n: 2 }]);
      const read = await stream.next(10);
      expect(read.count).toBe(2);
      expect(read.jobs.map((job) => job.name)).toEqual(['insert rd.c', 'insert rd.c']);
      expect(read.tally).toEqual([{ namespace: 'rd.c', operation: 'insert', count: 2 }]);

      // A read that waits for changes (up to maxAwaitTimeMS) does not hold a ping back.
      const order: string[] = [];
      const waiting = stream.next(10).then(() => order.push('read'));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await stream.ping()).toBeNull();
      order.push('ping');
      await waiting;
      expect(order).toEqual(['ping', 'read']);
    } finally {
      await client.close();
      await stream.shutdown();
    }
  });

  test('errors cross already classified', async () => {
    const stream = reader(100);
    try {
      await stream.open({ startAfter: { _data: '82ABCDEF' } });
      const error = (await stream.next(10).catch((e: unknown) => e)) as ReadError;
      expect(error.failure).toEqual({ kind: 'unresumable', code: 260 });
      expect(error.code).toBe(260);
    } finally {
      await stream.shutdown();
    }
  });
});

describe('a snapshot batch', () => {
  test('stops once its documents reach the byte bound, and the copy goes on after it', async () => {
    const client = new MongoClient(mongo.uri);
    try {
      const coll = client.db('rd').collection<{ _id: number; pad: string }>('big');
      await coll.insertMany(
        Array.from({ length: 5 }, (_, n) => ({ _id: n, pad: 'x'.repeat(1000) })),
      );
      // about 1,030 bytes of BSON each: the bound is reached with the third document
      const snapshots = new SnapshotReader(
        client,
        { kind: 'collection', db: 'rd', coll: 'big' },
        new Router(['alpha']),
        undefined,
        2500,
      );
      const { startAt } = await snapshots.begin();
      const request = { runId: 'r', startAt, ns: 'rd.big', upTo: null, limit: 100 };
      const first = await snapshots.read({ ...request, seq: 0, after: null });
      expect(first.count).toBe(3);
      const second = await snapshots.read({ ...request, seq: 1, after: first.last });
      expect([second.count, second.last]).toEqual([2, { id: 4 }]);
      expect((await snapshots.read({ ...request, seq: 2, after: second.last })).count).toBe(0);
    } finally {
      await client.close();
    }
  });
});

describe('/readyz of a running ingest', () => {
  let redis: RunningRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  test("follows the stream's own connection to MongoDB", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const ingest = startIngest({
      MONGODB_URI: mongo.uri,
      REDIS_URL: redis.url,
      WORKERS_FILE: workersFile(`workers = ["alpha"]\n`),
      WATCH: 'rd.ready',
      HTTP_PORT: String(port),
      MAX_AWAIT_TIME_MS: '100',
    });
    const readyz = async () => {
      const res = await fetch(`${url}/readyz`);
      return { status: res.status, body: (await res.json()) as { missing?: string[] } };
    };
    try {
      await waitFor(async () => (await readyz().catch(() => null))?.status === 200, 'ready');
      await mongo.kill('SIGKILL');
      await waitFor(
        async () => (await readyz()).body.missing?.some((m) => m.startsWith('mongodb: ')) ?? false,
        'MongoDB reported unreachable',
      );
      await mongo.restart();
      await waitFor(async () => (await readyz()).status === 200, 'ready again', 60_000);
    } finally {
      await ingest.stop('SIGTERM');
    }
  });
});
