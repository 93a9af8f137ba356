/**
 * The bench's own servers: a Redis and the MongoDB-compatible test server (packages/stack), on
 * free loopback ports, stopped at the end. One of each for the whole run, so every figure of the
 * run shares them; each figure starts from an empty Redis (FLUSHDB) and its own collection.
 */
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { startStack, type RunningStack } from '@changeq/stack';

export interface Servers {
  stack: RunningStack;
  client: MongoClient;
  redis: Redis;
  /** PIDs of redis-server and the test server, for their CPU and RSS. */
  pids: { redis: number; mongo: number };
  stop(): Promise<void>;
}

export async function startServers(historyMaxEvents: number): Promise<Servers> {
  const stack = await startStack({ mongo: { historyMaxEvents } });
  const client = new MongoClient(stack.mongodbUri);
  const redis = new Redis(stack.redisUrl, { maxRetriesPerRequest: null });
  await client.connect();
  return {
    stack,
    client,
    redis,
    pids: { redis: stack.redis.pid, mongo: stack.mongo.pid },
    async stop() {
      redis.disconnect();
      await client.close();
      await stack.stop();
    },
  };
}

/** Jobs waiting in BullMQ queues `names` under `prefix` (nothing consumes them while draining). */
export async function waitingJobs(redis: Redis, prefix: string, names: readonly string[]) {
  const counts = await Promise.all(names.map((name) => redis.llen(`${prefix}:${name}:wait`)));
  return counts.reduce((a, b) => a + b, 0);
}
