/**
 * Alternative (b): the pipeline of the resume-token blog posts. For every event, one `add` of a
 * job, then one `SET` of the event's resume token: two round trips per event, in order.
 */
import { MongoClient } from 'mongodb';
import { pipelineEnv } from './env.js';
import { userQueues, watchFromToken } from './queues.js';

const env = pipelineEnv();
const client = new MongoClient(env.mongodbUri);
const { redis, queueOf, jobId, tokenKey } = userQueues(env);

const stream = await watchFromToken(client, env, redis, tokenKey);

for await (const change of stream) {
  await queueOf(change).add(change.operationType, change, { jobId: jobId(change) });
  await redis.set(tokenKey, JSON.stringify(change._id));
}
