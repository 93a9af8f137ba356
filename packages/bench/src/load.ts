/**
 * The load generator: single-document inserts at a steady rate, each stamped with a sequence
 * number; the wall-clock time just before each insert is sent is what every latency counts from.
 * Writes are not awaited one by one (a real application's writes do not wait for each other).
 */
import type { Collection } from 'mongodb';
import { wallNow } from './record.js';

const PAD = 'x'.repeat(100);

/** Inserts `count` documents at `perSecond`; returns each one's send time by sequence number. */
export async function pacedInserts(
  coll: Collection,
  perSecond: number,
  count: number,
  firstSeq = 0,
): Promise<number[]> {
  const sent: number[] = new Array<number>(count);
  const pending = new Set<Promise<unknown>>();
  const t0 = performance.now();
  let next = 0;
  while (next < count) {
    const due = Math.min(count, Math.floor(((performance.now() - t0) * perSecond) / 1000) + 1);
    while (next < due) {
      const seq = firstSeq + next;
      sent[next] = wallNow();
      next += 1;
      const write: Promise<unknown> = coll
        .insertOne({ seq, pad: PAD })
        .finally(() => pending.delete(write));
      pending.add(write);
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(pending);
  return sent;
}
