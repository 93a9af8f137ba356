import { Redis } from 'ioredis';
import { Decimal128, MongoClient, ObjectId, UUID } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { documentIdentity } from '@changeq/shared';
import { startStack, type RunningStack } from '@changeq/stack';
import { ingestKeys } from '@changeq/store';
import { endProcesses, waitFor, workersFile, type TestProcess } from '@changeq/testkit';
import { readQueues, startIngest, storedToken } from './helpers.js';

const WORKERS = ['alpha', 'bravo', 'charlie'];
let stack: RunningStack;
const processes: TestProcess[] = [];

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await endProcesses(processes);
  await stack?.stop();
});

/** _ids of every type a collection may hold, so the copy must walk MongoDB's type order. */
function mixedId(i: number): unknown {
  switch (i % 6) {
    case 0:
      return i;
    case 1:
      return `s${i}`;
    case 2:
      return new ObjectId(i.toString(16).padStart(24, '0'));
    case 3:
      return new UUID(`00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`);
    case 4:
      return new Date(1_700_000_000_000 + i);
    default:
      return { k: i, n: Decimal128.fromString(`${i}.5`) };
  }
}

test('START_AT=snapshot copies every document once through the routing, resumes after a kill -9, then streams the changes made since', async () => {
  const client = new MongoClient(stack.mongodbUri);
  await client.connect();
  const db = client.db('snap');
  const names = ['one', 'two', 'three'];
  for (const name of names) {
    await db
      .collection(name)
      .insertMany(Array.from({ length: 400 }, (_, i) => ({ _id: mixedId(i), i, name })) as never);
  }
  const file = workersFile(`Workers = ["alpha", "bravo", "charlie"]\n`);
  const env = {
    MONGODB_URI: stack.mongodbUri,
    REDIS_URL: stack.redisUrl,
    WORKERS_FILE: file,
    WATCH: 'snap',
    START_AT: 'snapshot',
    BATCH_SIZE: '5',
    MAX_AWAIT_TIME_MS: '100',
  };
  const redis = new Redis(stack.redisUrl);
  const snapshotKey = ingestKeys('changeq', 'default').snapshot;
  let ingest = startIngest(env);
  processes.push(ingest);
  // Freeze it in the middle of the copy (second collection), change an already-copied
  // document, then kill it and let a new process finish the copy.
  const stateNow = async () => (await redis.get(snapshotKey)) ?? '';
  const atIndex = (state: string, index: number) =>
    state.includes(`"index":{"$numberInt":"${index}"}`);
  const deadline = Date.now() + 30_000;
  while (!atIndex(await stateNow(), 1)) {
    if (Date.now() > deadline) throw new Error('the copy never reached the second collection');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  process.kill(ingest.pid, 'SIGSTOP');
  expect(atIndex(await stateNow(), 1)).toBe(true);
  await db.collection('one').updateOne({ _id: 0 } as never, { $set: { changed: true } });
  await ingest.kill('SIGKILL');
  await db.collection('three').deleteOne({ _id: 's1' } as never); // not copied yet: the killed process never reached 'three'
  ingest = startIngest(env);
  processes.push(ingest);
  await waitFor(
    async () => (await storedToken(stack.redisUrl)) !== null,
    'the stream to start after the copy',
    60_000,
  );
  await db.collection('three').insertOne({ _id: 'late', late: true } as never);
  await waitFor(
    async () =>
      (await readQueues(stack.redisUrl, 'changeq', WORKERS)).some((j) => j.data.op === 'insert'),
    'the insert after the copy',
  );
  const jobs = await readQueues(stack.redisUrl, 'changeq', WORKERS);
  const snapshots = jobs.filter((j) => j.data.op === 'snapshot');
  // 1,200 documents, minus the one deleted before the copy reached it, each exactly once.
  const copied = new Set(snapshots.map((j) => j.data.doc));
  expect(copied.size).toBe(snapshots.length);
  expect(snapshots.length).toBe(1199);
  expect(copied.has(documentIdentity('snap.three', 's1'))).toBe(false);
  // The changes made during the copy follow the snapshot of their document, on the same worker.
  const update = jobs.find((j) => j.data.op === 'update')!;
  const sameDoc = jobs.filter((j) => j.data.doc === update.data.doc);
  expect(sameDoc.map((j) => j.data.op)).toEqual(['snapshot', 'update']);
  expect(new Set(sameDoc.map((j) => j.queue)).size).toBe(1);
  const snapshotEvent = snapshots.find(
    (j) => j.data.doc === documentIdentity('snap.three', mixedId(5)),
  )!.event;
  expect(snapshotEvent).toMatchObject({
    operationType: 'snapshot',
    ns: { db: 'snap', coll: 'three' },
  });
  expect(
    (snapshotEvent as unknown as { fullDocument: { _id: { n: Decimal128 } } }).fullDocument._id.n,
  ).toBeInstanceOf(Decimal128);
  expect(jobs.filter((j) => j.data.op === 'delete')).toHaveLength(1);
  expect(await redis.get(snapshotKey)).toBeNull();
  redis.disconnect();
  await client.close();
}, 120_000);
