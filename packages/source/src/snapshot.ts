import type { Document, MongoClient, Timestamp } from 'mongodb';
import {
  documentIdentity,
  encodeEvent,
  type Logger,
  type Router,
  type SnapshotEvent,
} from '@changeq/shared';
import {
  eventJobId,
  eventJobName,
  eventQueueName,
  snapshotPosition,
  type PositionStore,
  type SnapshotProgress,
  type Enqueuer,
  type PlannedJob,
} from '@changeq/store';
import type { IngestConfig } from './config.js';
import { idAfter, idAtOrBefore } from './id-order.js';
import { SYSTEM_DATABASES } from './watch-scope.js';

export interface SnapshotContext {
  mongo: MongoClient;
  enqueuer: Enqueuer;
  router: Router;
  store: PositionStore;
  config: IngestConfig;
  log: Logger;
  signal: AbortSignal;
  onProgress?: (progress: {
    namespace: string;
    copied: number;
    index: number;
    total: number;
  }) => void;
}

/** The collections a snapshot copies: every collection of the watch scope that exists now. */
export async function snapshotNamespaces(
  mongo: MongoClient,
  config: IngestConfig,
): Promise<string[]> {
  const collectionsOf = async (db: string) =>
    (await mongo.db(db).listCollections({ type: 'collection' }, { nameOnly: true }).toArray())
      .map((info) => info.name)
      .filter((name) => !name.startsWith('system.'))
      .sort()
      .map((name) => `${db}.${name}`);
  const scope = config.watch;
  switch (scope.kind) {
    case 'deployment': {
      const { databases } = await mongo.db('admin').admin().listDatabases({ nameOnly: true });
      const dbs = databases
        .map((db) => db.name)
        .filter(
          (name) =>
            !scope.excludeDbs.includes(name) &&
            !(SYSTEM_DATABASES as readonly string[]).includes(name),
        );
      return (await Promise.all(dbs.sort().map(collectionsOf))).flat();
    }
    case 'database':
      return collectionsOf(scope.db);
    case 'collection':
      return [`${scope.db}.${scope.coll}`];
    case 'namespaces':
      return scope.namespaces.map((ns) => `${ns.db}.${ns.coll}`);
  }
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

function planDocument(
  state: SnapshotProgress,
  ns: string,
  doc: Document,
  seq: number,
  index: number,
  router: Router,
): PlannedJob {
  const { db, coll } = splitNamespace(ns);
  const identity = documentIdentity(ns, doc._id);
  const event: SnapshotEvent = {
    _id: { snapshot: `${state.runId}:${seq}:${index}` },
    operationType: 'snapshot',
    ns: { db, coll },
    documentKey: { _id: doc._id },
    fullDocument: doc,
    clusterTime: state.startAt,
  };
  return {
    queue: eventQueueName(router.route(ns, doc._id)),
    name: eventJobName('snapshot', ns),
    jobId: eventJobId(`snapshot\0${state.runId}\0${identity}`),
    json: JSON.stringify(encodeEvent(event, { ns, op: 'snapshot', doc: identity })),
    position: snapshotPosition(seq, index),
  };
}

/**
 * Copies every watched collection as `snapshot` events through the same routing as change
 * events, then hands back the cluster time taken before the copy began, so the stream picks up
 * every change made during and after the copy (a document changed mid-copy arrives twice: as
 * its snapshot and as its change, in that order, on the same worker). Resumable: progress is
 * saved per batch, and a batch interrupted mid-commit is re-read over exactly the same range.
 * Resolves null when stopped.
 */
export async function runSnapshot(ctx: SnapshotContext): Promise<Timestamp | null> {
  let state = await ctx.store.loadSnapshot();
  if (!state || state.done) {
    if (state?.done) return state.startAt;
  }
  if (!state) {
    const startAt = await currentClusterTime(ctx.mongo);
    state = {
      v: 1,
      runId: `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`,
      startAt,
      namespaces: await snapshotNamespaces(ctx.mongo, ctx.config),
      index: 0,
      last: null,
      pending: null,
      seq: 0,
      copied: 0,
      done: false,
    };
    await ctx.enqueuer.clearWatermarks('snapshot');
    await ctx.store.saveSnapshot(state);
    ctx.log.info(
      { namespaces: state.namespaces, startAt: state.startAt },
      'snapshot: copying the watched collections',
    );
  } else {
    ctx.log.info(
      { namespace: state.namespaces[state.index], copied: state.copied },
      'snapshot: resuming an interrupted copy',
    );
  }
  await ctx.enqueuer.loadWatermarks('snapshot');

  while (state.index < state.namespaces.length) {
    if (ctx.signal.aborted) return null;
    const ns = state.namespaces[state.index]!;
    const { db, coll } = splitNamespace(ns);
    const collection = ctx.mongo.db(db).collection(coll);
    const after = state.last ? idAfter(state.last.id) : {};
    let docs: Document[];
    let seq: number;
    if (state.pending) {
      // Same range as before the interruption; documents deleted since are simply absent, and
      // ones inserted since arrive through the change stream anyway.
      seq = state.pending.seq;
      docs = await collection
        .find({ $and: [after, idAtOrBefore(state.pending.upper)] })
        .sort({ _id: 1 })
        .toArray();
    } else {
      seq = state.seq;
      docs = await collection.find(after).sort({ _id: 1 }).limit(ctx.config.batchSize).toArray();
      if (docs.length === 0) {
        state = { ...state, index: state.index + 1, last: null };
        await ctx.store.saveSnapshot(state);
        continue;
      }
      state = { ...state, pending: { seq, upper: docs[docs.length - 1]!._id } };
      await ctx.store.saveSnapshot(state);
    }
    const jobs = docs.map((doc, index) => planDocument(state!, ns, doc, seq, index, ctx.router));
    await ctx.enqueuer.commit(jobs, 'snapshot');
    const upper: unknown = state.pending!.upper;
    state = {
      ...state,
      last: { id: upper },
      pending: null,
      seq: seq + 1,
      copied: state.copied + docs.length,
    };
    await ctx.store.saveSnapshot(state);
    ctx.onProgress?.({
      namespace: ns,
      copied: state.copied,
      index: state.index,
      total: state.namespaces.length,
    });
  }
  state = { ...state, done: true };
  await ctx.store.saveSnapshot(state);
  ctx.log.info(
    { copied: state.copied },
    'snapshot: copy complete; streaming changes made since it began',
  );
  return state.startAt;
}
