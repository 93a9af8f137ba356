/**
 * The MongoDB side of a snapshot copy: which collections to copy, the cluster time the copy
 * starts at, and each collection's documents in `_id` order, read a batch at a time and planned
 * as `snapshot` events. The copy itself (its progress in Redis, its commits) is `copySnapshot`;
 * this side runs wherever the MongoDB connection lives (the ingest's reader thread, or the CLI).
 */
import type { Document, MongoClient, Timestamp } from 'mongodb';
import {
  BSON,
  type RingRouter,
  type Router,
  type RoutingRule,
  type SnapshotEvent,
} from '@changeq/shared';
import type { PlannedJob } from '@changeq/store';
// The position codec alone: the reader thread plans snapshot batches without loading BullMQ.
import { snapshotPosition } from '@changeq/store/watermark';
import { idAfter, idAtOrBefore } from './id-order.js';
import { planEvent } from './planner.js';
import { SYSTEM_DATABASES, inScope, type WatchScope } from './watch-scope.js';

/** What a copy starts from. */
export interface SnapshotStart {
  /** The cluster time taken before the copy began: the stream continues from it. */
  startAt: Timestamp;
  /** The collections to copy, `db.coll`, in the order they are copied. */
  namespaces: string[];
}

/** One batch of a collection to read. */
export interface SnapshotBatchRequest {
  runId: string;
  /** The copy's start time (every snapshot event's clusterTime). */
  startAt: Timestamp;
  ns: string;
  /** The batch's number in the copy: its jobs' positions are (seq, index). */
  seq: number;
  /** The last `_id` committed in this collection, if any: the batch begins after it. */
  after: { id: unknown } | null;
  /**
   * An interrupted batch's last `_id`: the batch is read again up to it, whatever its size, so
   * that it holds what it held before (minus documents deleted since). Null: `limit` documents.
   */
  upTo: { id: unknown } | null;
  limit: number;
}

export interface SnapshotBatch {
  /** One job per document, in `_id` order. */
  jobs: PlannedJob[];
  /** Documents read; 0 when the collection has none left. */
  count: number;
  /** The last document's `_id`, when one was read. */
  last: { id: unknown } | null;
}

/** What a copy reads from MongoDB (`SnapshotReader`, or the ingest's reader thread for it). */
export interface SnapshotSource {
  begin(): Promise<SnapshotStart>;
  read(request: SnapshotBatchRequest): Promise<SnapshotBatch>;
}

/** The collections a snapshot copies: every collection of the watch scope that exists now. */
export async function snapshotNamespaces(
  mongo: MongoClient,
  config: { watch: WatchScope },
): Promise<string[]> {
  const collectionsOf = async (db: string) =>
    (await mongo.db(db).listCollections({ type: 'collection' }, { nameOnly: true }).toArray())
      .map((info) => info.name)
      .filter((name) => !name.startsWith('system.'))
      .sort()
      .map((name) => `${db}.${name}`);
  const scope = config.watch;
  switch (scope.kind) {
    case 'collection':
      return [`${scope.db}.${scope.coll}`];
    case 'namespaces':
      return scope.namespaces.map((ns) => `${ns.db}.${ns.coll}`);
    case 'database':
      return (await collectionsOf(scope.db)).filter((ns) => inScopeNs(scope, ns));
    case 'deployment':
    case 'patterns': {
      const { databases } = await mongo.db('admin').admin().listDatabases({ nameOnly: true });
      const dbs = databases
        .map((db) => db.name)
        .filter(
          (name) =>
            !scope.excludeDbs.includes(name) &&
            !(SYSTEM_DATABASES as readonly string[]).includes(name),
        );
      const all = (await Promise.all(dbs.sort().map(collectionsOf))).flat();
      return all.filter((ns) => inScopeNs(scope, ns));
    }
  }
}

function inScopeNs(scope: WatchScope, ns: string): boolean {
  const dot = ns.indexOf('.');
  return inScope(scope, ns.slice(0, dot), ns.slice(dot + 1));
}

/** The current cluster time, read before the copy so the stream can continue from it. */
async function currentClusterTime(mongo: MongoClient): Promise<Timestamp> {
  const reply = await mongo.db('admin').command({ hello: 1 });
  const time = (reply.operationTime ?? reply.$clusterTime?.clusterTime) as Timestamp | undefined;
  if (!time)
    throw new Error(
      'the server reported no cluster time; snapshots need a replica set or sharded cluster',
    );
  return time;
}

function splitNamespace(ns: string): { db: string; coll: string } {
  const dot = ns.indexOf('.');
  return { db: ns.slice(0, dot), coll: ns.slice(dot + 1) };
}

/**
 * The BSON a new batch holds at most, plus its last document (at most 16 MiB, MongoDB's document
 * limit), so that the memory a batch takes does not grow with BATCH_SIZE times document size
 * (the ingest's reader thread has a heap limit: see apps/ingest/src/reader/stream-reader.ts).
 */
export const SNAPSHOT_BATCH_BYTES = 8 * 1024 * 1024;

/** A snapshot copy's reads over a MongoDB connection. */
export class SnapshotReader implements SnapshotSource {
  constructor(
    private readonly mongo: MongoClient,
    private readonly watch: WatchScope,
    /** The routing, or where to get the current one (the ingest's reader thread may change it). */
    private readonly router: Router | RingRouter | (() => Router | RingRouter),
    /** workers.toml's `[routing]` (none: every namespace by document). */
    private readonly rules?: ReadonlyMap<string, RoutingRule>,
    private readonly maxBatchBytes = SNAPSHOT_BATCH_BYTES,
  ) {}

  async begin(): Promise<SnapshotStart> {
    const startAt = await currentClusterTime(this.mongo);
    return { startAt, namespaces: await snapshotNamespaces(this.mongo, { watch: this.watch }) };
  }

  async read(request: SnapshotBatchRequest): Promise<SnapshotBatch> {
    const { db, coll } = splitNamespace(request.ns);
    const collection = this.mongo.db(db).collection(coll);
    const after = request.after ? idAfter(request.after.id) : {};
    const docs = request.upTo
      ? await collection
          .find({ $and: [after, idAtOrBefore(request.upTo.id)] })
          .sort({ _id: 1 })
          .toArray()
      : await this.readNew(collection.find(after).sort({ _id: 1 }).limit(request.limit));
    const jobs = docs.flatMap((doc, index) => {
      const event: SnapshotEvent = {
        _id: { snapshot: `${request.runId}:${request.seq}:${index}` },
        operationType: 'snapshot',
        ns: { db, coll },
        documentKey: { _id: doc._id },
        fullDocument: doc as Document,
        clusterTime: request.startAt,
      };
      return planEvent(
        event,
        typeof this.router === 'function' ? this.router() : this.router,
        { kind: 'snapshot', runId: request.runId, position: snapshotPosition(request.seq, index) },
        this.rules,
      );
    });
    const last = docs[docs.length - 1];
    return { jobs, count: docs.length, last: last ? { id: last._id } : null };
  }

  /**
   * A new batch's documents: up to its limit, or fewer once they reach `maxBatchBytes` (a short
   * batch is not the collection's end: only an empty one is). A batch read again (`upTo`) ends
   * where it ended before, so it is bounded alike.
   */
  private async readNew(cursor: AsyncIterable<Document>): Promise<Document[]> {
    const docs: Document[] = [];
    let bytes = 0;
    for await (const doc of cursor) {
      docs.push(doc);
      bytes += BSON.calculateObjectSize(doc);
      if (bytes >= this.maxBatchBytes) break; // leaving the loop closes the cursor
    }
    return docs;
  }
}
