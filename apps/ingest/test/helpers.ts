import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { MongoClient, type ChangeStreamDocument, type Document, type Timestamp } from 'mongodb';
import { decodeEvent, type EventJobData } from '@changeq/shared';
import { ingestKeys } from '@changeq/store';
import { changesSince, startApp, type TestProcess } from '@changeq/testkit';

/** Starts the built ingest as a real process with the given environment. */
export function startIngest(env: Record<string, string>, args: string[] = []): TestProcess {
  return startApp('ingest', args, { LOG_LEVEL: 'info', ...env });
}

export interface QueuedEvent {
  queue: string;
  jobId: string;
  data: EventJobData;
  event: ChangeStreamDocument;
}

/** Every job of every queue, in the order the queue hands them out (oldest first). */
export async function readQueues(
  redisUrl: string,
  prefix: string,
  queues: readonly string[],
): Promise<QueuedEvent[]> {
  const redis = new Redis(redisUrl);
  try {
    const all: QueuedEvent[] = [];
    for (const name of queues) {
      const queue = new Queue(name, { connection: redis, prefix });
      // BullMQ pushes new jobs on the left of `wait` and workers take from the right.
      const ids = (await redis.lrange(`${prefix}:${name}:wait`, 0, -1)).reverse();
      for (const id of ids) {
        const job = await queue.getJob(id);
        if (!job) throw new Error(`job ${id} listed in ${name}:wait has no data`);
        const data = job.data as EventJobData;
        all.push({
          queue: name,
          jobId: id,
          data,
          event: decodeEvent(data) as ChangeStreamDocument,
        });
      }
      await queue.close();
    }
    return all;
  } finally {
    redis.disconnect();
  }
}

export async function storedToken(
  redisUrl: string,
  prefix = 'changeq',
  ingestId = 'default',
): Promise<string | null> {
  const redis = new Redis(redisUrl);
  try {
    return await redis.get(ingestKeys(prefix, ingestId).token);
  } finally {
    redis.disconnect();
  }
}

/** The server's own record of every change since `from`: a fresh change stream read to the end. */
export async function groundTruth(
  mongodbUri: string,
  from: Timestamp,
  pipeline: Document[] = [],
  quietMs = 1500,
): Promise<ChangeStreamDocument[]> {
  const client = new MongoClient(mongodbUri);
  try {
    return await changesSince(client, from, pipeline, quietMs);
  } finally {
    await client.close();
  }
}

/** The cluster time now (every write after it is in the ground truth). */
export async function clusterTimeNow(mongodbUri: string): Promise<Timestamp> {
  const client = new MongoClient(mongodbUri);
  try {
    const reply = await client.db('admin').command({ hello: 1 });
    return (reply.operationTime ?? reply.$clusterTime.clusterTime) as Timestamp;
  } finally {
    await client.close();
  }
}

/** The `_data` of the stored resume token, or null. */
export async function storedTokenData(
  redisUrl: string,
  prefix = 'changeq',
  ingestId = 'default',
): Promise<string | null> {
  const raw = await storedToken(redisUrl, prefix, ingestId);
  if (raw === null) return null;
  const match = /"_data":"([0-9A-Fa-f]+)"/.exec(raw);
  return match ? match[1]!.toUpperCase() : null;
}

export function tokenOf(event: ChangeStreamDocument): string {
  return (event._id as { _data: string })._data;
}
