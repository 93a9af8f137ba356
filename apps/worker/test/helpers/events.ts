/**
 * Change events shaped like the driver's (real bson types), encoded with the shared codec and
 * enqueued through real BullMQ the way the ingest does: job id from the resume token, job name
 * `"<op> <ns>"`, queue chosen by the shared Router.
 */
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Long, ObjectId, Timestamp, type Document } from 'mongodb';
import { Router, documentIdentity, encodeEvent, type EventJobData } from '@changeq/shared';
import { DEFAULT_PREFIX, eventJobId, eventJobName, eventQueueName } from '@changeq/store';

let clock = 1_700_000_000;
let increment = 0;

function nextPosition(): { ts: Timestamp; token: string } {
  increment++;
  if (increment > 1000) {
    clock++;
    increment = 1;
  }
  const ts = new Timestamp({ t: clock, i: increment });
  // A resume token's _data is hex; unique per event is all the tests need.
  const token = `82${clock.toString(16)}${increment.toString(16).padStart(8, '0')}${randomBytes(6).toString('hex')}`;
  return { ts, token };
}

export interface TestEvent {
  id: string;
  name: string;
  data: EventJobData;
  /** The document's _id (document events only), for routing. */
  docId?: unknown;
}

/** An insert/update/delete of one document; `n` is its number among that document's events. */
export function documentEvent(
  op: 'insert' | 'update' | 'replace' | 'delete',
  db: string,
  coll: string,
  docId: unknown,
  fields: Document = {},
): TestEvent {
  const { ts, token } = nextPosition();
  const ns = `${db}.${coll}`;
  const base: Document = {
    _id: { _data: token },
    operationType: op,
    clusterTime: ts,
    wallTime: new Date(),
    ns: { db, coll },
    documentKey: { _id: docId },
  };
  if (op === 'insert' || op === 'replace') base.fullDocument = { _id: docId, ...fields };
  if (op === 'update') {
    base.updateDescription = { updatedFields: fields, removedFields: [], truncatedArrays: [] };
  }
  const data = encodeEvent(base, { ns, op, doc: documentIdentity(ns, docId) });
  return { id: eventJobId(token), name: eventJobName(op, ns), data, docId };
}

/** A namespace-wide event (doc = null): a barrier in the worker. */
export function namespaceEvent(op: 'drop' | 'dropDatabase', db: string, coll?: string): TestEvent {
  const { ts, token } = nextPosition();
  const ns = coll === undefined ? db : `${db}.${coll}`;
  const event: Document = {
    _id: { _data: token },
    operationType: op,
    clusterTime: ts,
    wallTime: new Date(),
    ns: coll === undefined ? { db } : { db, coll },
  };
  return {
    id: eventJobId(token),
    name: eventJobName(op, ns),
    data: encodeEvent(event, { ns, op, doc: null }),
  };
}

/** Sample document ids of assorted bson types (routing canonicalises them). */
export function docIds(count: number): unknown[] {
  const ids: unknown[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 3 === 0) ids.push(new ObjectId());
    else if (i % 3 === 1) ids.push(Long.fromNumber(10_000 + i));
    else ids.push(`doc-${i}`);
  }
  return ids;
}

/** Adds events to their queues in the given order (addBulk keeps the order within one call). */
export async function enqueue(
  redis: Redis,
  events: readonly TestEvent[],
  route: (event: TestEvent) => string,
  prefix = DEFAULT_PREFIX,
): Promise<void> {
  const queues = new Map<string, Queue>();
  try {
    const batches = new Map<string, TestEvent[]>();
    const flush = async (worker: string) => {
      const batch = batches.get(worker) ?? [];
      if (batch.length === 0) return;
      batches.set(worker, []);
      let queue = queues.get(worker);
      if (!queue) {
        queue = new Queue(eventQueueName(worker), { connection: redis, prefix });
        queues.set(worker, queue);
      }
      await queue.addBulk(
        batch.map((e) => ({ name: e.name, data: e.data, opts: { jobId: e.id } })),
      );
    };
    for (const event of events) {
      const worker = route(event);
      const batch = batches.get(worker) ?? [];
      batch.push(event);
      batches.set(worker, batch);
      if (batch.length >= 200) await flush(worker);
    }
    for (const worker of batches.keys()) await flush(worker);
  } finally {
    await Promise.all([...queues.values()].map((q) => q.close()));
  }
}

/** Routes document events with the shared Router, as the ingest does. */
export function routerFor(names: readonly string[]): (event: TestEvent) => string {
  const router = new Router(names);
  return (event) => router.route(event.data.ns, event.docId);
}

/** `count` update events over `documents` documents, all added to `worker`'s queue in order. */
export async function enqueueUpdates(
  redis: Redis,
  worker: string,
  count: number,
  documents: number,
): Promise<void> {
  const ids = docIds(documents);
  const events = Array.from({ length: count }, (_, i) =>
    documentEvent('update', 'shop', 'orders', ids[i % ids.length], { n: i }),
  );
  await enqueue(redis, events, () => worker);
}
