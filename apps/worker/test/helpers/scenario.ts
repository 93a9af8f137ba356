import type { Redis } from 'ioredis';
import { documentEvent, docIds, type TestEvent } from './events.js';

/** A seeded generator (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Scenario {
  events: TestEvent[];
  /** doc label (`d<i>`) → its events in order. */
  byDoc: Map<string, TestEvent[]>;
  /** job id → its document label and number. */
  info: Map<string, { doc: string; n: number }>;
  perDoc: number;
}

/**
 * `docs` documents in `shop.orders` with `perDoc` events each (an insert, then updates), the
 * documents' events interleaved at random but each document's in order. Every event carries
 * `doc` (its document's label) and `n` (1-based position among its document's events).
 */
export function buildScenario(docs: number, perDoc: number, random: () => number): Scenario {
  const ids = docIds(docs);
  const byDoc = new Map<string, TestEvent[]>();
  const pending: { label: string; id: unknown; next: number }[] = ids.map((id, i) => ({
    label: `d${i}`,
    id,
    next: 1,
  }));
  const events: TestEvent[] = [];
  const info = new Map<string, { doc: string; n: number }>();
  while (pending.length > 0) {
    const index = Math.floor(random() * pending.length);
    const doc = pending[index]!;
    const n = doc.next++;
    const fields = { doc: doc.label, n, status: `s${n}` };
    const event =
      n === 1
        ? documentEvent('insert', 'shop', 'orders', doc.id, fields)
        : documentEvent('update', 'shop', 'orders', doc.id, fields);
    events.push(event);
    info.set(event.id, { doc: doc.label, n });
    byDoc.set(doc.label, [...(byDoc.get(doc.label) ?? []), event]);
    if (doc.next > perDoc) pending.splice(index, 1);
  }
  return { events, byDoc, info, perDoc };
}

export interface Call {
  n: number;
  attempt: number;
  ok: boolean;
  pid: number;
}

export async function callsOf(redis: Redis, doc: string): Promise<Call[]> {
  const raw = await redis.lrange(`rec:calls:${doc}`, 0, -1);
  return raw.map((entry) => {
    const [n, attempt, result, pid] = entry.split(':');
    return { n: Number(n), attempt: Number(attempt), ok: result === 'ok', pid: Number(pid) };
  });
}

/** Where the sequence of handler calls of a document goes backwards in event order, if anywhere. */
export function orderViolation(calls: readonly Call[]): string | undefined {
  for (let i = 1; i < calls.length; i++) {
    const prev = calls[i - 1]!;
    const cur = calls[i]!;
    if (cur.n < prev.n) {
      return `call ${i} ran event ${cur.n} (attempt ${cur.attempt}) after event ${prev.n}`;
    }
  }
  return undefined;
}

/** The event numbers 1..perDoc of `doc` that have no successful call yet. */
export function missing(calls: readonly Call[], perDoc: number, from = 1): number[] {
  const ok = new Set(calls.filter((c) => c.ok).map((c) => c.n));
  const out: number[] = [];
  for (let n = from; n <= perDoc; n++) if (!ok.has(n)) out.push(n);
  return out;
}
