/**
 * `changeq resync` on a stopped ingest: it copies every document of the watched collections
 * with the ingest's snapshot code while a writer keeps changing them, and the next ingest start
 * streams exactly the changes made since the copy began (compared with the server's own record).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { MongoClient, Timestamp, type ObjectId } from 'mongodb';
import { ingestKeys } from '@changeq/store';
import { startStack, type RunningStack } from '@changeq/stack';
import { changesSince, startApp, waitFor, workersFile } from '@changeq/testkit';
import { cli, userErrorLine, waitingJobs } from './helpers.js';

const NAMES = ['alpha', 'bravo', 'charlie'];
let stack: RunningStack;
let mongo: MongoClient;
let redis: Redis;

beforeAll(async () => {
  stack = await startStack();
  mongo = new MongoClient(stack.mongodbUri);
  await mongo.connect();
  redis = new Redis(stack.redisUrl);
});
afterAll(async () => {
  redis?.disconnect();
  await mongo?.close();
  await stack?.stop();
});

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

describe('resync', () => {
  test('copies every document while changes go on; the next ingest start streams every change since the copy began', async () => {
    const env = {
      REDIS_URL: stack.redisUrl,
      MONGODB_URI: stack.mongodbUri,
      WORKERS_FILE: workersFile(`workers = ["alpha", "bravo", "charlie"]\n`),
      QUEUE_PREFIX: 'rs',
      INGEST_ID: 'rs',
      WATCH: 'rs',
      BATCH_SIZE: '25',
      MAX_AWAIT_TIME_MS: '100',
    };
    const a = mongo.db('rs').collection<{ _id?: ObjectId; n?: number; w?: boolean }>('a');
    const b = mongo.db('rs').collection('b');
    const initialA = (await a.insertMany(Array.from({ length: 400 }, (_, n) => ({ n }))))
      .insertedIds;
    await b.insertMany(Array.from({ length: 100 }, (_, n) => ({ n })));
    const initialIds = Object.values(initialA);

    // An ingest ran once: a token is stored, so resync must ask before replacing it.
    const first = startApp('ingest', [], env);
    const tokenKey = ingestKeys('rs', 'rs').token;
    await waitFor(async () => (await redis.get(tokenKey)) !== null, 'a stored token');
    await first.stop('SIGTERM');
    const storedToken = await redis.get(tokenKey);
    const refused = userErrorLine(await cli(['resync'], env));
    expect(refused).toMatch(
      /resync needs a confirmation \(the resume token at .* is stored; resync replaces it/,
    );
    expect(await redis.get(tokenKey)).toBe(storedToken);

    // A writer keeps inserting and updating while the copy runs.
    let writing = true;
    const writer = (async () => {
      for (let n = 0; writing; n++) {
        await a.insertOne({ w: true, n });
        await a.updateOne({ _id: initialIds[n % initialIds.length]! }, { $inc: { touched: 1 } });
        await sleep(5);
      }
    })();
    const result = await cli(['resync', '--yes'], env);
    writing = false;
    await writer;
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(
      /resync: copying 2 collections, about \d+ documents: rs\.a ~\d+, rs\.b ~100/,
    );
    const copied = Number(
      /resync: copied (\d+) documents of 2 collections/.exec(result.stdout)?.[1],
    );
    expect(copied).toBeGreaterThanOrEqual(500);

    // And after it.
    await a.insertMany(Array.from({ length: 5 }, (_, n) => ({ after: true, n })));
    await b.updateMany({ n: { $lt: 5 } }, { $set: { after: true } });

    const marker = JSON.parse((await cli(['token', 'show', '--json'], env)).stdout);
    expect(marker).toMatchObject({ kind: 'startAt' });
    expect(await redis.exists(ingestKeys('rs', 'rs').snapshot)).toBe(0);
    const startAt = new Timestamp({ t: marker.clusterTime.t, i: marker.clusterTime.i });
    const truth = await changesSince(mongo.db('rs'), startAt);
    expect(truth.some((e) => e.operationType === 'insert' && e.fullDocument.w === true)).toBe(true);
    expect(truth.some((e) => e.operationType === 'update' && e.ns.coll === 'b')).toBe(true);

    const second = startApp('ingest', [], env);
    const changesQueued = async () =>
      (await waitingJobs(stack.redisUrl, 'rs', NAMES)).filter(
        (j) => j.event.operationType !== 'snapshot',
      );
    await waitFor(
      async () => (await changesQueued()).length >= truth.length,
      async () => `${truth.length} changes, have ${(await changesQueued()).length}`,
    );
    await second.stop('SIGTERM');

    const jobs = await waitingJobs(stack.redisUrl, 'rs', NAMES);
    const snapshots = jobs.filter((j) => j.event.operationType === 'snapshot');
    const changes = jobs.filter((j) => j.event.operationType !== 'snapshot');
    expect(snapshots).toHaveLength(copied);
    const key = (id: unknown) => String(id);
    const snapshotIds = new Set(snapshots.map((j) => key(j.event.documentKey?._id)));
    expect(snapshotIds.size).toBe(copied); // each document copied once
    const docsNow = [...(await a.find().toArray()), ...(await b.find().toArray())];
    const inserted = new Set(
      changes
        .filter((j) => j.event.operationType === 'insert')
        .map((j) => key(j.event.documentKey?._id)),
    );
    for (const doc of docsNow) {
      expect(snapshotIds.has(key(doc._id)) || inserted.has(key(doc._id))).toBe(true);
    }
    for (const id of [...initialIds, ...(await b.find().toArray()).map((d) => d._id)]) {
      expect(snapshotIds.has(key(id))).toBe(true);
    }
    // Exactly the server's record since the copy began: none missing, none twice.
    const tokens = (events: { _id: unknown }[]) =>
      events.map((e) => (e._id as { _data: string })._data).sort();
    expect(tokens(changes.map((j) => j.event))).toEqual(tokens(truth));
    // Per document, its snapshot comes before its changes, in the same queue.
    const position = new Map(jobs.map((job, index) => [job.jobId, { queue: job.queue, index }]));
    for (const change of changes) {
      const snap = snapshots.find(
        (s) => key(s.event.documentKey?._id) === key(change.event.documentKey?._id),
      );
      if (!snap) continue;
      expect(position.get(snap.jobId)!.queue).toBe(change.queue);
      expect(position.get(snap.jobId)!.index).toBeLessThan(position.get(change.jobId)!.index);
    }
  });
});
