import { MongoClient, ObjectId, type ClientSession } from 'mongodb';
import { seededRandom } from './random.js';

export interface ChaosWrites {
  /** Steps to write in all (a transaction counts its documents); Infinity: until `signal`. */
  operations: number;
  documents: number;
  collections: readonly string[];
  db: string;
  writers: number;
  seed: number;
  /** Carry on when a write fails (while servers are being restarted). */
  tolerateErrors?: boolean;
  /** Stop (after the write under way) once aborted. */
  signal?: AbortSignal;
  /** Steps per second over all writers; default: as fast as the server answers. */
  ratePerSecond?: number;
  /**
   * Set: each transaction touches 1 to this many of the writer's documents (at random);
   * default: three picks, so one to three documents.
   */
  transactionSize?: number;
}

export interface WriteTally {
  /** Steps attempted (a transaction counts its documents), failed ones included. */
  operations: number;
  /** Writes or transactions that failed (only with `tolerateErrors`). */
  failures: number;
  lastError: string | null;
}

/** The _id of document n: a mix of types so routing sees ints, strings and ObjectIds. */
function idOf(n: number): number | string | ObjectId {
  if (n % 3 === 0) return n;
  if (n % 3 === 1) return `doc-${n}`;
  return new ObjectId(n.toString(16).padStart(24, '0'));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Inserts, updates, replaces and deletes across `documents` documents in several collections,
 * from several concurrent writers over disjoint documents; every 40th step of a writer is a
 * transaction touching up to three documents (or up to `transactionSize`). The server's own change history (changesSince) is
 * what a test compares with: a failed write is simply not in it.
 */
export async function writeChaos(mongodbUri: string, plan: ChaosWrites): Promise<WriteTally> {
  const client = new MongoClient(mongodbUri, { maxPoolSize: plan.writers + 2 });
  await client.connect();
  const db = client.db(plan.db);
  const tally: WriteTally = { operations: 0, failures: 0, lastError: null };
  const stepMs = plan.ratePerSecond ? (1000 * plan.writers) / plan.ratePerSecond : 0;
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
        let nextAt = Date.now();
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
            tally.failures += 1;
            tally.lastError = (error as Error).message;
            await sleep(50);
          }
        };
        while (step < target && !plan.signal?.aborted) {
          if (stepMs > 0) {
            nextAt += stepMs;
            // Behind by more than a second (a fault held the writes): do not burst to catch up.
            nextAt = Math.max(nextAt, Date.now() - 1000);
            if (nextAt > Date.now()) await sleep(nextAt - Date.now());
          }
          let size = 1;
          if (step % 40 === 39) {
            const session = client.startSession();
            const picks = Array.from(
              {
                length: plan.transactionSize ? 1 + Math.floor(random() * plan.transactionSize) : 3,
              },
              () => mine[Math.floor(random() * mine.length)]!,
            );
            const unique = [...new Set(picks)];
            size = unique.length;
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
          } else {
            await tolerant(() => one(mine[Math.floor(random() * mine.length)]!));
          }
          step += size;
          tally.operations += size;
        }
      }),
    );
  } finally {
    await client.close();
  }
  return tally;
}
