/**
 * Alternative (a): the pipeline a competent engineer writes in about 40 lines. The driver's
 * `watch`, then per batch of what the driver has buffered (up to 1,000 events): one `addBulk` per
 * queue with the event's resume token as job id (so a replay after a crash adds nothing twice),
 * then one `SET` of the last token. The queue is chosen by the same rendezvous hash over the
 * worker names as changeq's. Its consumers are bare BullMQ Workers (bare-workers.ts).
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { MongoClient, type ChangeStreamDocument } from 'mongodb';
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

for (;;) {
  const batch: ChangeStreamDocument[] = [await stream.next()];
  while (batch.length < 1000 && stream.bufferedCount() > 0) batch.push(await stream.next());
  const perQueue = new Map<string, { name: string; data: unknown; opts: { jobId: string } }[]>();
  for (const change of batch) {
    const key = 'documentKey' in change ? change.documentKey._id : null;
    const queue = router.route(`${env.db}.${env.coll}`, key);
    const jobs = perQueue.get(queue) ?? [];
    jobs.push({
      name: change.operationType,
      data: change,
      opts: { jobId: (change._id as { _data: string })._data },
    });
    perQueue.set(queue, jobs);
  }
  await Promise.all([...perQueue].map(([name, jobs]) => queues.get(name)!.addBulk(jobs)));
  await redis.set(tokenKey, JSON.stringify(batch[batch.length - 1]!._id));
}
