/**
 * Alternative (b): the pipeline of the resume-token blog posts. For every event, one `add` of a
 * job, then one `SET` of the event's resume token: two round trips per event, in order.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { Router } from '@changeq/shared';
import { exitOnSigterm, pipelineEnv } from './env.js';

const env = pipelineEnv();
const client = new MongoClient(env.mongodbUri);
const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
const router = new Router(env.workers);
const queues = new Map(
  env.workers.map((name) => [name, new Queue(name, { connection: redis, prefix: env.prefix })]),
);
const tokenKey = `${env.prefix}:token`;

const saved = await redis.get(tokenKey);
const stream = client
  .db(env.db)
  .collection(env.coll)
  .watch([], saved ? { resumeAfter: JSON.parse(saved) } : env.start);
exitOnSigterm(async () => {
  await stream.close();
  await client.close();
});

for await (const change of stream) {
  const key = 'documentKey' in change ? change.documentKey._id : null;
  const queue = queues.get(router.route(`${env.db}.${env.coll}`, key))!;
  await queue.add(change.operationType, change, { jobId: (change._id as { _data: string })._data });
  await redis.set(tokenKey, JSON.stringify(change._id));
}
