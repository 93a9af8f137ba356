import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Timestamp, type ChangeStreamDocument } from 'mongodb';
import { Router, type EventJobData } from '@changeq/shared';
import { expect } from 'vitest';
import { eventQueueName } from '@changeq/store';
import { tokenOf } from './helpers.js';

/** A consumer that completes every job at once and records what it saw, per queue, in order. */
export class RecordingConsumer {
  readonly seen = new Map<string, { jobId: string; token: string; data: EventJobData }[]>();
  private readonly workers: Worker[] = [];
  private readonly connection: Redis;

  constructor(redisUrl: string, prefix: string, queues: readonly string[]) {
    this.connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    for (const queue of queues) {
      this.seen.set(queue, []);
      const worker = new Worker(
        queue,
        async (job) => {
          const data = job.data as EventJobData;
          const token = (data.event._id as { _data: string })._data;
          this.seen.get(queue)!.push({ jobId: job.id!, token, data });
        },
        { connection: this.connection, prefix, concurrency: 1 },
      );
      worker.on('error', () => undefined);
      this.workers.push(worker);
    }
  }

  get total(): number {
    return [...this.seen.values()].reduce((sum, list) => sum + list.length, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.close()));
    this.connection.disconnect();
  }
}

/**
 * Checks the three promises against the server's own change history: every event is exactly one
 * job in the queue its routing names (namespace events: one per queue), and each queue received
 * its events in oplog order.
 */
export function assertExactlyOnceInOrder(
  truth: readonly ChangeStreamDocument[],
  seen: ReadonlyMap<string, readonly { token: string }[]>,
  workerNames: readonly string[],
): void {
  const router = new Router(workerNames);
  const expected = new Map<string, string[]>(workerNames.map((name) => [eventQueueName(name), []]));
  for (const event of truth) {
    if (event.operationType === 'invalidate') continue;
    const documentKey = (event as { documentKey?: { _id: unknown } }).documentKey;
    const ns = (event as { ns: { db: string; coll?: string } }).ns;
    const namespace = ns.coll === undefined ? ns.db : `${ns.db}.${ns.coll}`;
    const targets =
      documentKey && !['drop', 'rename', 'dropDatabase'].includes(event.operationType)
        ? [eventQueueName(router.route(namespace, documentKey._id))]
        : [...expected.keys()];
    for (const queue of targets) expected.get(queue)!.push(tokenOf(event));
  }
  for (const [queue, tokens] of expected) {
    const got = (seen.get(queue) ?? []).map((entry) => entry.token);
    const duplicates = got.length - new Set(got).size;
    expect(duplicates, `duplicated events in ${queue}`).toBe(0);
    const gotSet = new Set(got);
    const missing = tokens.filter((token) => !gotSet.has(token));
    expect(missing.length, `events missing from ${queue}`).toBe(0);
    expect(got.length, `unexpected events in ${queue}`).toBe(tokens.length);
    // Stronger than per-document order: the whole queue is in oplog order.
    expect(got, `order of ${queue}`).toEqual(tokens);
  }
}

export function timestampFromDate(date: Date): Timestamp {
  return new Timestamp({ t: Math.floor(date.getTime() / 1000), i: 0 });
}
