/**
 * Alternative (a): the pipeline a competent engineer writes in about 40 lines. The driver's
 * `watch`, then per batch of what the driver has buffered (up to 1,000 events): one `addBulk` per
 * queue with the event's resume token as job id (so a replay after a crash adds nothing twice),
 * then one `SET` of the last token. The queue is chosen by the same rendezvous hash over the
 * worker names as changeq's. Its consumers are bare BullMQ Workers (bare-workers.ts).
 */
import { MongoClient, type ChangeStreamDocument } from 'mongodb';
import { pipelineEnv } from './env.js';
import { userQueues, watchFromToken } from './queues.js';

const env = pipelineEnv();
const client = new MongoClient(env.mongodbUri);
const { redis, addBatch, tokenKey } = userQueues(env);

const stream = await watchFromToken(client, env, redis, tokenKey);

for (;;) {
  const batch: ChangeStreamDocument[] = [await stream.next()];
  while (batch.length < 1000 && stream.bufferedCount() > 0) batch.push(await stream.next());
  await addBatch(batch);
  await redis.set(tokenKey, JSON.stringify(batch[batch.length - 1]!._id));
}
