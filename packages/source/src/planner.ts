import type { ChangeStreamDocument, Document } from 'mongodb';
import {
  NAMESPACE_EVENTS,
  documentIdentity,
  encodeEvent,
  tokenData,
  type Router,
} from '@changeq/shared';
import type { PlannedJob } from '@changeq/store';
// The key schema alone: the reader thread plans events without loading BullMQ.
import { eventJobId, eventJobName, eventQueueName } from '@changeq/store/keys';

/** `db.coll` for collection events, `db` for database-wide ones. */
export function namespaceOf(event: Document): string {
  const ns = event.ns as { db?: string; coll?: string } | undefined;
  if (!ns?.db) return '';
  return ns.coll === undefined ? ns.db : `${ns.db}.${ns.coll}`;
}

/**
 * Turns one change event into the jobs that carry it. A document event goes to the one worker
 * the router picks for (namespace, documentKey._id) — not the whole documentKey, which on a
 * sharded collection also holds the shard key and may change. A namespace-wide event (drop,
 * rename, dropDatabase, or anything without a document key) goes to every worker, because each
 * may hold older events of that namespace's documents that must run first.
 */
export function planEvent(event: ChangeStreamDocument, router: Router): PlannedJob[] {
  const data = tokenData(event._id as Document);
  if (data === null) {
    throw new Error(
      'a change event has a resume token without _data (pre-4.2 format); changeq needs MongoDB 4.2 or newer',
    );
  }
  const op = event.operationType;
  const ns = namespaceOf(event as Document);
  const documentKey = (event as { documentKey?: { _id?: unknown } }).documentKey;
  const hasDocument =
    documentKey !== undefined && '_id' in documentKey && !NAMESPACE_EVENTS.has(op);
  const doc = hasDocument ? documentIdentity(ns, documentKey._id) : null;
  const base = {
    name: eventJobName(op, ns),
    jobId: eventJobId(data),
    json: JSON.stringify(encodeEvent(event, { ns, op, doc })),
    position: data,
  };
  if (hasDocument) return [{ ...base, queue: eventQueueName(router.route(ns, documentKey._id)) }];
  return router.names.map((worker) => ({ ...base, queue: eventQueueName(worker) }));
}
