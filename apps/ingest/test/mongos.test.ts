/**
 * Through a mongos (the test server in mongos mode) with a sharded collection: the events'
 * documentKey carries the shard key, yet every event goes to the queue its namespace and `_id`
 * alone choose (the same as without a shard key), exactly once, and a restarted ingest resumes
 * from its stored token through the mongos.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { MongoClient, type ChangeStreamDocument } from 'mongodb';
import { startStack, type RunningStack } from '@changeq/stack';
import { planEvent } from '@changeq/source';
import { Router } from '@changeq/shared';
import { waitFor, workersFile } from '@changeq/testkit';
import {
  clusterTimeNow,
  groundTruth,
  readQueues,
  startIngest,
  storedTokenData,
  tokenOf,
} from './helpers.js';

const WORKERS = ['alpha', 'bravo', 'charlie'];
const PREFIX = 'mongos';

let stack: RunningStack;
let client: MongoClient;
beforeAll(async () => {
  stack = await startStack({ mongo: { mongos: true } });
  client = new MongoClient(stack.mongodbUri);
  await client.connect();
});
afterAll(async () => {
  await client?.close();
  await stack?.stop();
});

test('routes by _id alone and resumes through a mongos, with the shard key in documentKey', async () => {
  const admin = client.db('admin');
  expect((await admin.command({ hello: 1 })).msg).toBe('isdbgrid');
  await admin.command({ shardCollection: 'shop.orders', key: { region: 1 } });
  const orders = client.db('shop').collection<{ _id: number; region: string; n: number }>('orders');
  await new Promise((resolve) => setTimeout(resolve, 1100)); // START_AT has one-second resolution
  await client.db('warmup').collection('x').insertOne({});
  const from = await clusterTimeNow(stack.mongodbUri);
  const env = {
    MONGODB_URI: stack.mongodbUri,
    REDIS_URL: stack.redisUrl,
    WORKERS_FILE: workersFile(`workers = ${JSON.stringify(WORKERS)}\n`),
    WATCH: 'shop.orders',
    QUEUE_PREFIX: PREFIX,
    START_AT: new Date(from.high * 1000).toISOString(),
    MAX_AWAIT_TIME_MS: '200',
  };
  const caughtUp = async () => {
    const truth = await groundTruth(
      stack.mongodbUri,
      from,
      [{ $match: { 'ns.db': 'shop', 'ns.coll': 'orders' } }],
      300,
    );
    const last = tokenOf(truth[truth.length - 1]!).toUpperCase();
    await waitFor(
      async () => (await storedTokenData(stack.redisUrl, PREFIX)) === last,
      'the ingest to store the last event as its position',
      20_000,
    );
    return truth;
  };

  let ingest = startIngest(env);
  await ingest.waitForLine(/change stream open/, 30_000);
  await orders.insertMany(
    Array.from({ length: 30 }, (_, n) => ({ _id: n, region: ['eu', 'us', 'ap'][n % 3]!, n })),
  );
  await orders.updateMany({ _id: { $lt: 15 } }, { $inc: { n: 100 } });
  await caughtUp();
  await ingest.kill('SIGKILL');

  // Written while the ingest is down: the restart reads them from the stored token.
  await orders.updateMany({ _id: { $gte: 15 } }, { $inc: { n: 100 } });
  await orders.deleteMany({ _id: { $lt: 5 } });
  ingest = startIngest(env);
  await ingest.waitForLine(/resuming after the stored resume token/, 30_000);
  const truth = await caughtUp();
  await ingest.stop();

  const jobs = await readQueues(stack.redisUrl, PREFIX, WORKERS);
  // Exactly once: one job per event of the server's history, no more.
  expect(jobs.map((job) => job.jobId).sort()).toEqual(
    truth.flatMap((event) => planEvent(event, new Router(WORKERS)).map((j) => j.jobId)).sort(),
  );
  const router = new Router(WORKERS);
  for (const job of jobs) {
    const key = (job.event as { documentKey: Record<string, unknown> }).documentKey;
    // Through the mongos the documentKey holds the shard key, then _id...
    expect(Object.keys(key)).toEqual(['region', '_id']);
    // ...and the queue is the one the same event without a shard key goes to.
    const withoutShardKey = { ...job.event, documentKey: { _id: key._id } } as ChangeStreamDocument;
    expect(planEvent(withoutShardKey, router)[0]?.queue).toBe(job.queue);
  }
  expect(new Set(jobs.map((job) => job.queue)).size).toBe(3);
}, 60_000);
