import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { MongoClient, type ChangeStreamDocument, type Document, type Timestamp } from 'mongodb';
import { decodeEvent, type EventJobData } from '@changeq/shared';
import { isAlive, spawnTracked, terminate, waitForExit } from '@changeq/stack';
import { ingestKeys } from '@changeq/store';

export const APP_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const MAIN = join(APP_ROOT, 'dist', 'main.js');

export interface IngestProcess {
  child: ChildProcess;
  pid: number;
  /** Everything the process wrote to stderr (its JSON log lines). */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts the built ingest as a real process with the given environment. */
export function startIngest(env: Record<string, string>, args: string[] = []): IngestProcess {
  const child = spawnTracked(process.execPath, [MAIN, ...args], {
    env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    pid: child.pid!,
    output: () => output,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (isAlive(child.pid!)) process.kill(child.pid!, signal);
      await waitForExit(child);
    },
  };
}

export async function stopAll(processes: IngestProcess[]): Promise<void> {
  await Promise.all(processes.map((p) => terminate(p.pid, 'SIGKILL', 1000)));
}

/** Waits until `check` holds, polling; fails with `what` after `timeoutMs`. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
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
    const stream = client.watch(pipeline, { startAtOperationTime: from, maxAwaitTimeMS: 200 });
    const events: ChangeStreamDocument[] = [];
    let quietSince = Date.now();
    while (Date.now() - quietSince < quietMs) {
      const change = await stream.tryNext();
      if (change) {
        events.push(change);
        quietSince = Date.now();
      }
    }
    await stream.close();
    return events;
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
