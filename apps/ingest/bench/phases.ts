/** Where the ingest's time goes, phase by phase, without overlap (a diagnostic, not the benchmark). */
import { Redis } from 'ioredis';
import { MongoClient, type Timestamp } from 'mongodb';
import { Router, createLogger } from '@changeq/shared';
import { startStack } from '@changeq/stack';
import { Enqueuer, type PlannedJob } from '@changeq/store';
import { ChangeSource, planEvent } from '@changeq/source/stream';

const EVENTS = 50_000;
const stack = await startStack();
const client = new MongoClient(stack.mongodbUri);
await client.connect();
await new Promise((r) => setTimeout(r, 1100));
await client.db('w').collection('x').insertOne({});
const from = (await client.db('admin').command({ hello: 1 })).operationTime as Timestamp;
for (let i = 0; i < EVENTS; i += 1000) {
  await client
    .db('bench')
    .collection('events')
    .insertMany(
      Array.from({ length: 1000 }, (_, j) => ({
        n: i + j,
        name: `item ${i + j}`,
        tags: ['a', 'b'],
        at: new Date(),
      })),
    );
}
const source = new ChangeSource(client, {
  watch: { kind: 'collection', db: 'bench', coll: 'events' },
  match: null,
  fullDocument: 'default',
  fullDocumentBeforeChange: 'off',
  expandedEvents: false,
  splitLargeEvents: true,
  pipeline: null,
  batchSize: 1000,
  maxAwaitTimeMs: 1000,
});
source.open({ startAtOperationTime: from });
const router = new Router(['alpha', 'bravo', 'charlie']);
const redis = new Redis(stack.redisUrl);
const enqueuer = new Enqueuer({
  redis,
  prefix: 'p',
  queueNames: router.names,
  watermarkKey: (q) => `wm:${q}`,
  jobOptions: {},
  log: createLogger({ name: 'x', level: 'warn' }),
});
let read = 0,
  plan = 0,
  commit = 0,
  n = 0,
  bulk = 0;
const { Queue } = await import('bullmq');
const bulkQueues = new Map(
  router.names.map((name) => [name, new Queue(name, { connection: redis, prefix: 'b' })]),
);
while (n < EVENTS) {
  let t = performance.now();
  const batch = await source.next(1000);
  read += performance.now() - t;
  t = performance.now();
  const jobs: PlannedJob[] = batch.events.flatMap((e) => planEvent(e, router));
  plan += performance.now() - t;
  // addBulk takes data objects; parsing them back is not part of what it is compared on.
  const data = new Map(jobs.map((j) => [j, JSON.parse(j.json) as unknown]));
  t = performance.now();
  await Promise.all(
    router.names.map((name) =>
      bulkQueues
        .get(name)!
        .addBulk(
          jobs
            .filter((j) => j.queue === name)
            .map((j) => ({ name: j.name, data: data.get(j), opts: { jobId: j.jobId } })),
        ),
    ),
  );
  bulk += performance.now() - t;
  t = performance.now();
  await enqueuer.commit(jobs, 'stream');
  commit += performance.now() - t;
  n += batch.events.length;
}
const us = (ms: number) => ((ms * 1000) / n).toFixed(1);
console.log(
  `per event: read ${us(read)} µs, plan ${us(plan)} µs, commit ${us(commit)} µs, addBulk of the same jobs ${us(bulk)} µs`,
);
await source.close();
await enqueuer.close();
redis.disconnect();
await client.close();
await stack.stop();
