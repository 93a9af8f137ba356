/**
 * What the operator CLI and the metrics read about the system, without taking part in it: job
 * counts per queue, and per worker name its lease holder, blocked documents and pending
 * operator commands.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { parseLeaseValue, type LeaseHolder } from './codecs/lease.js';
import { workerKeys } from './keys.js';

/** The job states reported per queue, in BullMQ's names. */
export const JOB_STATES = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'failed',
  'completed',
] as const;
export type JobState = (typeof JOB_STATES)[number];
export type JobCounts = Record<JobState, number>;

/** A queue's job counts, from BullMQ itself. */
export async function readJobCounts(queue: Queue): Promise<JobCounts> {
  const counts = await queue.getJobCounts(...JOB_STATES);
  return Object.fromEntries(JOB_STATES.map((state) => [state, counts[state] ?? 0])) as JobCounts;
}

/** The job counts of the queue `name`, read once (for a queue read often, keep a Queue). */
export async function queueJobCounts(
  redis: Redis,
  prefix: string,
  name: string,
): Promise<JobCounts> {
  const queue = new Queue(name, { connection: redis, prefix });
  try {
    return await readJobCounts(queue);
  } finally {
    await queue.close();
  }
}

/** A worker name's state in Redis (besides its queues). */
export interface WorkerRecord {
  /** The process holding the name's lease, if any. */
  holder: LeaseHolder | undefined;
  /** Milliseconds before the lease expires unless renewed (negative when there is none). */
  leaseTtlMs: number;
  blockedDocuments: number;
  pendingCommands: number;
}

/** Reads a worker name's lease, blocked documents and pending commands in one round trip. */
export async function readWorkerRecord(
  redis: Redis,
  prefix: string,
  worker: string,
): Promise<WorkerRecord> {
  const keys = workerKeys(prefix, worker);
  const replies = await redis
    .multi()
    .get(keys.lease)
    .pttl(keys.lease)
    .hlen(keys.blocked)
    .llen(keys.commands)
    .exec();
  const [lease, ttl, blocked, commands] = (replies ?? []).map(([error, value]) => {
    if (error) throw error;
    return value;
  });
  return {
    holder: parseLeaseValue((lease as string | null) ?? null),
    leaseTtlMs: Number(ttl),
    blockedDocuments: Number(blocked ?? 0),
    pendingCommands: Number(commands ?? 0),
  };
}

/** Per worker name, 1 while some process holds its lease and 0 when none does. */
export function readLiveWorkers(
  redis: Redis,
  prefix: string,
  workers: readonly string[],
): Promise<number[]> {
  return Promise.all(workers.map((name) => redis.exists(workerKeys(prefix, name).lease)));
}
