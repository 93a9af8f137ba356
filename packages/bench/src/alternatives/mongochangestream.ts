/**
 * Alternative (c): mongochangestream with BullMQ, wired as its README shows: `initSync(redis,
 * collection)`, then `processChangeStream(processRecords)` with its defaults (batches of up to
 * 500 events, flushed at the latest after 30 s; it keeps the resume token in Redis itself). The
 * callback adds each batch with one `addBulk` per queue, the token as job id, routed as above.
 * 0.55.0, not the newest (0.64.0): 0.64.0 needs obj-walker ^2.5.0, which the npm registry
 * reachable here does not have, so it does not install.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { initSync } from 'mongochangestream';
import { MongoClient, type ChangeStreamDocument } from 'mongodb';
import { Router } from '@changeq/shared';
import { exitOnSigterm, pipelineEnv } from './env.js';

const env = pipelineEnv();
const client = await MongoClient.connect(env.mongodbUri);
const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
const router = new Router(env.workers);
const queues = new Map(
  env.workers.map((name) => [name, new Queue(name, { connection: redis, prefix: env.prefix })]),
);

const processRecords = async (docs: ChangeStreamDocument[]) => {
  const perQueue = new Map<string, { name: string; data: unknown; opts: { jobId: string } }[]>();
  for (const change of docs) {
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
};

const sync = initSync(redis, client.db(env.db).collection(env.coll));
const changeStream = await sync.processChangeStream(processRecords);
exitOnSigterm(async () => {
  await changeStream.stop();
  await client.close();
});
changeStream.start();
