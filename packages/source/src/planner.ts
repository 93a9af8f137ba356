import type { ChangeStreamDocument, Document } from 'mongodb';
import {
  NAMESPACE_EVENTS,
  documentKey,
  type DocumentKey,
  encodeEvent,
  identityOf,
  tokenData,
  type ChangeEvent,
  type Hold,
  type Route,
  type Router,
  type RingRouter,
  type RoutingRule,
  type TransactionMark,
} from '@changeq/shared';
import type { PlannedJob } from '@changeq/store';
// The key schema alone: the reader thread plans events without loading BullMQ.
import {
  HANDOFF_JOB_NAME,
  eventJobId,
  eventJobName,
  eventQueueName,
  handoffJobId,
} from '@changeq/store/keys';
import { lineOf } from './routing-line.js';

/** `db.coll` for collection events, `db` for database-wide ones. */
export function namespaceOf(event: Document): string {
  const ns = event.ns as { db?: string; coll?: string } | undefined;
  if (!ns?.db) return '';
  return ns.coll === undefined ? ns.db : `${ns.db}.${ns.coll}`;
}

/**
 * Where an event comes from, which decides its job id (the same on every re-read, so a re-read
 * adds nothing twice) and the position that orders it in its queue (see PlannedJob.position).
 */
export type EventOrigin =
  /** A change event: both come from its resume token. */
  | { kind: 'stream' }
  /**
   * A document of a snapshot copy: the job id from the copy's run and the document (a copy
   * resumed after a crash re-reads a batch whole), the position from the batch and the index.
   */
  | { kind: 'snapshot'; runId: string; position: string };

const STREAM: EventOrigin = { kind: 'stream' };

/** Operations on one document: their events always carry its documentKey. */
const DOCUMENT_OPERATIONS: ReadonlySet<string> = new Set(['insert', 'update', 'replace', 'delete']);

/**
 * Turns one event, a change event or a snapshot copy's document, into the jobs that carry it.
 * A document event goes to the one worker the router picks for its line: by default
 * (namespace, documentKey._id) — not the whole documentKey, which on a sharded collection also
 * holds the shard key and may change — or the namespace's routing key (`rules`, see
 * routing-line.ts). A namespace-wide event (drop, rename, dropDatabase, or anything without a
 * document key) goes to every worker, because each may hold older events of that namespace's
 * documents that must run first. The line's canonical key is computed once, for its route and
 * for the job's `doc` field. `transaction`: the event's place in its transaction
 * (markTransactions), which every job of the event carries.
 *
 * An event that changes its document's routing key is preceded, on the old key's owner, by a
 * handoff marker in the old key's line (at the event's own position), and carries `after`: it
 * runs only once that marker reached the head of its line, i.e. once the document's earlier
 * events under the old key finished. Every other event plans exactly as without routing keys.
 */
export function planEvent(
  event: ChangeEvent | ChangeStreamDocument,
  router: Router | RingRouter,
  origin: EventOrigin = STREAM,
  rules?: ReadonlyMap<string, RoutingRule>,
  transaction: TransactionMark | null = null,
): PlannedJob[] {
  const op = event.operationType;
  const ns = namespaceOf(event as Document);
  const documentId = (event as { documentKey?: { _id?: unknown } }).documentKey;
  if (DOCUMENT_OPERATIONS.has(op) && (documentId === undefined || !('_id' in documentId))) {
    // Only a PIPELINE stage ($redact) can do this; routing it to every worker would be wrong.
    throw new Error(
      `a change event (${String(op)} in ${ns}) has no documentKey._id, so it cannot be routed: a PIPELINE stage removed it; keep documentKey in every event`,
    );
  }
  const ofDocument = documentId !== undefined && '_id' in documentId && !NAMESPACE_EVENTS.has(op);
  const rule = ofDocument ? rules?.get(ns) : undefined;
  const line = rule === undefined ? null : lineOf(event as Document, ns, op, rule);
  const key = line?.key ?? (ofDocument ? documentKey(ns, documentId._id) : null);
  const doc = key && identityOf(key);
  // A snapshot job's id names the document, never the line (one line holds many documents).
  const stamped = stamp(
    event,
    origin,
    line === null ? doc : identityOf(documentKey(ns, documentId?._id)),
  );
  const encoded = encodeEvent(event, { ns, op, doc });
  const data = transaction ? { ...encoded, txn: transaction } : encoded;
  const position = origin.kind === 'stream' ? stamped.position : null;
  const job = (route: Route, after?: Hold[]): PlannedJob => ({
    name: eventJobName(op, ns),
    ...stamped,
    queue: eventQueueName(route.owner),
    json: JSON.stringify({
      ...data,
      ...(route.hold ? { hold: route.hold } : {}),
      ...(after ? { after } : {}),
    }),
  });
  const routes = routesOf(router, key, position);
  if (line?.before == null || position === null) return routes.map((route) => job(route));
  // The routing key changed: hand the document's line over from the old key's owner.
  const old = routesOf(router, line.before, position)[0]!;
  const handoff = `key-${stamped.jobId}`;
  const marker: PlannedJob = {
    name: HANDOFF_JOB_NAME,
    jobId: handoffJobId(handoff),
    position,
    queue: eventQueueName(old.owner),
    // `line`: the marker runs in the old key's line, so it passes once that line's earlier
    // events finished (the worker's other lines are not waited for).
    json: JSON.stringify({ kind: 'handoff', epoch: handoff, line: identityOf(line.before) }),
  };
  const after: Hold[] = [{ epoch: handoff, workers: [old.owner] }];
  if (old.hold) after.push(old.hold);
  // The marker first: when both owners are one worker, the event must follow it in the queue.
  return [marker, ...routes.map((route) => job(route, after))];
}

/**
 * Where a document's event goes (a namespace-wide event: every name). A ring routes by the
 * event's position; a snapshot copy's documents, which have none in the stream, by the current
 * epoch (a copy runs before the stream starts, so no ring change can be under way).
 */
function routesOf(router: Router | RingRouter, key: DocumentKey | null, position: string | null) {
  if ('epochs' in router) {
    if (position !== null) return key ? [router.route(key, position)] : router.routeAll(position);
    if (key) return [{ owner: router.route(key, '\uffff').owner, hold: null }];
    return router.current.names.map((owner) => ({ owner, hold: null }));
  }
  if (key) return [{ owner: router.routeKey(key), hold: null }];
  return router.names.map((owner) => ({ owner, hold: null }));
}

/** An event's job id and position (see EventOrigin). */
function stamp(
  event: ChangeEvent | ChangeStreamDocument,
  origin: EventOrigin,
  doc: string | null,
): { jobId: string; position: string } {
  if (origin.kind === 'snapshot') {
    return {
      jobId: eventJobId(`snapshot\0${origin.runId}\0${doc ?? ''}`),
      position: origin.position,
    };
  }
  const data = tokenData(event._id as Document);
  if (data === null) {
    throw new Error(
      'a change event has a resume token without _data (pre-4.2 format); changeq needs MongoDB 4.2 or newer',
    );
  }
  return { jobId: eventJobId(data), position: data };
}
