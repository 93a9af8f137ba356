/**
 * What the alternatives build alike, as their users would: a Redis connection, one BullMQ queue
 * per worker name, routing by the same rendezvous hash as changeq, and a batch added with one
 * `addBulk` per queue, the event's resume token as job id (a replay adds nothing twice).
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { ChangeStream, ChangeStreamDocument, MongoClient } from 'mongodb';
import { Router } from '@changeq/shared';
import { exitOnSigterm, type PipelineEnv } from './env.js';

export function userQueues(env: PipelineEnv) {
  const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  const router = new Router(env.workers);
  const queues = new Map(
    env.workers.map((name) => [name, new Queue(name, { connection: redis, prefix: env.prefix })]),
  );
  /** The queue of a change: by its document, as changeq routes. */
  const queueOf = (change: ChangeStreamDocument): Queue => {
    const key = 'documentKey' in change ? change.documentKey._id : null;
    return queues.get(router.route(`${env.db}.${env.coll}`, key))!;
  };
  const jobId = (change: ChangeStreamDocument) => (change._id as { _data: string })._data;
  const addBatch = async (changes: readonly ChangeStreamDocument[]): Promise<void> => {
    const perQueue = new Map<Queue, { name: string; data: unknown; opts: { jobId: string } }[]>();
    for (const change of changes) {
      const queue = queueOf(change);
      const jobs = perQueue.get(queue) ?? [];
      jobs.push({ name: change.operationType, data: change, opts: { jobId: jobId(change) } });
      perQueue.set(queue, jobs);
    }
    await Promise.all([...perQueue].map(([queue, jobs]) => queue.addBulk(jobs)));
  };
  return { redis, queueOf, jobId, addBatch, tokenKey: `${env.prefix}:token` };
}

/**
 * The change stream, resumed after the token the pipeline stored (or from the run's start), closed
 * with the client on SIGTERM.
 */
export async function watchFromToken(
  client: MongoClient,
  env: PipelineEnv,
  redis: Redis,
  tokenKey: string,
): Promise<ChangeStream> {
  const saved = await redis.get(tokenKey);
  const stream = client
    .db(env.db)
    .collection(env.coll)
    .watch([], saved ? { resumeAfter: JSON.parse(saved) } : env.start);
  exitOnSigterm(async () => {
    await stream.close();
    await client.close();
  });
  return stream;
}
