import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import {
  MongoClient,
  ObjectId,
  Timestamp,
  type ChangeStreamDocument,
  type ClientSession,
} from 'mongodb';
import { Router, type EventJobData } from '@changeq/shared';
import { expect } from 'vitest';
import { eventQueueName } from '@changeq/store';
import { tokenOf } from './helpers.js';

/** A deterministic pseudo-random generator, so a failing run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ChaosWrites {
  operations: number;
  documents: number;
  collections: readonly string[];
  db: string;
  writers: number;
  seed: number;
  /** Carry on when a write fails (while servers are being restarted). */
  tolerateErrors?: boolean;
}

/** The _id of document n: a mix of types so routing sees ints, strings and ObjectIds. */
function idOf(n: number): number | string | ObjectId {
  if (n % 3 === 0) return n;
  if (n % 3 === 1) return `doc-${n}`;
  return new ObjectId(n.toString(16).padStart(24, '0'));
}

/**
 * Inserts, updates, replaces and deletes across `documents` documents in several collections,
 * from several concurrent writers over disjoint documents; every 40th step of a writer is a
 * transaction touching three documents.
 */
export async function writeChaos(mongodbUri: string, plan: ChaosWrites): Promise<number> {
  const client = new MongoClient(mongodbUri, { maxPoolSize: plan.writers + 2 });
  await client.connect();
  const db = client.db(plan.db);
  let done = 0;
  try {
    await Promise.all(
      Array.from({ length: plan.writers }, async (_, writer) => {
        const random = seededRandom(plan.seed * 31 + writer);
        const mine = Array.from({ length: plan.documents }, (_, n) => n).filter(
          (n) => n % plan.writers === writer,
        );
        const exists = new Set<number>();
        const target = Math.floor(plan.operations / plan.writers);
        let step = 0;
        const one = async (n: number, session?: ClientSession) => {
          const coll = db.collection(plan.collections[n % plan.collections.length]!);
          const _id = idOf(n);
          if (!exists.has(n)) {
            try {
              await coll.insertOne({ _id, n, v: 0, tags: [] } as never, { session });
            } catch (error) {
              // A retried insert whose first try was applied (server restarts): it exists.
              if ((error as { code?: number }).code !== 11000 || session) throw error;
            }
            exists.add(n);
            return;
          }
          const roll = random();
          if (roll < 0.7)
            await coll.updateOne(
              { _id } as never,
              { $inc: { v: 1 }, $set: { at: new Date() } },
              { session },
            );
          else if (roll < 0.85)
            await coll.replaceOne({ _id } as never, { n, v: -1, replaced: true }, { session });
          else {
            await coll.deleteOne({ _id } as never, { session });
            exists.delete(n);
          }
        };
        const tolerant = async (work: () => Promise<void>) => {
          // Faults injected by the tests (server restarts) may fail a write; the server's own
          // change history is the ground truth either way, so the writer carries on.
          try {
            await work();
          } catch (error) {
            if (!plan.tolerateErrors) throw error;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        };
        while (step < target) {
          if (step % 40 === 39) {
            const session = client.startSession();
            const picks = [0, 1, 2].map(() => mine[Math.floor(random() * mine.length)]!);
            const unique = [...new Set(picks)];
            const before = new Set(exists);
            await tolerant(async () => {
              try {
                await session.withTransaction(async () => {
                  // withTransaction may run this more than once: start from the state before it.
                  exists.clear();
                  for (const n of before) exists.add(n);
                  for (const n of unique) await one(n, session);
                });
              } catch (error) {
                exists.clear();
                for (const n of before) exists.add(n);
                throw error;
              } finally {
                await session.endSession();
              }
            });
            step += unique.length;
          } else {
            await tolerant(() => one(mine[Math.floor(random() * mine.length)]!));
            step += 1;
          }
        }
        done += step;
      }),
    );
  } finally {
    await client.close();
  }
  return done;
}

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
