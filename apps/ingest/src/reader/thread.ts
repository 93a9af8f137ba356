/**
 * The stream reader thread: owns the ingest's MongoDB connection, reads the change stream's
 * batches and the snapshot copy's, and turns their events into planned jobs (routing, Extended
 * JSON, job ids), so that the main thread only commits to Redis. Decoding BSON and encoding
 * jobs cost about as much CPU as BullMQ's own work per job; on separate threads the two overlap.
 *
 * Requests are handled one at a time, in the order they were sent; a ping is answered at once,
 * beside a read that may be waiting for changes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Document } from 'mongodb';
import { RingRouter, createMongoClient, mongoUriRefusal, parseRoutingRule } from '@changeq/shared';
// The key schema alone (not the store's index, which loads BullMQ into this thread's isolate).
import { useHashTags } from '@changeq/store/keys';
import {
  ChangeSource,
  SnapshotReader,
  classifyMongoError,
  markTransactions,
  namespaceOf,
  planEvent,
} from '@changeq/source/stream';
import type { EventTally } from '../ports.js';
import {
  decodeMatch,
  decodePipeline,
  decodeSnapshotRequest,
  decodeStart,
  encodeSnapshotBatch,
  encodeSnapshotStart,
  encodeTime,
  type ReaderInit,
  type ReaderReply,
  type ReaderRequest,
  type ReaderStarted,
  type WireBatch,
  type WireError,
} from './protocol.js';

if (!parentPort) throw new Error('the stream reader runs as a worker thread of the ingest');
const port = parentPort;
const init = workerData as ReaderInit;
useHashTags(init.hashTags); // a thread has its own module state: name queues as the main thread

const refused = mongoUriRefusal(init.mongodbUri);
if (refused) {
  port.postMessage({
    started: false,
    problem: refused.problem,
    fix: refused.fix,
  } satisfies ReaderStarted);
  process.exit(1); // in a worker thread: ends this thread, after delivering the message above
}
const client = createMongoClient(init.mongodbUri, {
  appName: init.appName,
  serverSelectionTimeoutMS: init.serverSelectionTimeoutMS,
});
const source = new ChangeSource(client, {
  ...init.source,
  match: decodeMatch(init.source.matchJson),
  pipeline: decodePipeline(init.source.pipelineJson),
});
// Routing by the ring's history: an event goes where its position says, whichever side of a
// ring change a read-ahead batch lies (the main thread sends each new epoch).
let router = new RingRouter(init.ring);
const rules = new Map(
  Object.entries(init.routing).map(([ns, spec]) => [ns, parseRoutingRule(spec)] as const),
);
const snapshots = new SnapshotReader(client, init.source.watch, () => router, rules);
port.postMessage({ started: true } satisfies ReaderStarted);

async function read(max: number): Promise<WireBatch> {
  const batch = await source.next(max);
  const jobs: ReturnType<typeof planEvent> = [];
  const tally = new Map<string, EventTally>();
  const transactions = markTransactions(batch.events, batch.partialTime);
  batch.events.forEach((event, index) => {
    for (const job of planEvent(event, router, undefined, rules, transactions[index] ?? null)) {
      jobs.push(job);
    }
    const namespace = namespaceOf(event as Document);
    const key = `${namespace}\u0000${event.operationType}`;
    const entry = tally.get(key);
    if (entry) entry.count += 1;
    else tally.set(key, { namespace, operation: event.operationType, count: 1 });
  });
  const last = batch.events[batch.events.length - 1] as
    { clusterTime?: Parameters<typeof encodeTime>[0]; wallTime?: Date } | undefined;
  return {
    count: batch.events.length,
    jobs,
    tally: [...tally.values()],
    last: last
      ? {
          clusterTime: last.clusterTime ? encodeTime(last.clusterTime) : null,
          wallTime: last.wallTime ?? null,
        }
      : null,
    token: batch.token,
    invalidated: batch.invalidated,
  };
}

/** Whether MongoDB answers over this thread's connection (the caller bounds the wait). */
async function ping(): Promise<string | null> {
  try {
    await client.db('admin').command({ ping: 1 });
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

async function handle(request: ReaderRequest): Promise<unknown> {
  switch (request.op) {
    case 'connect':
      await client.connect();
      return null;
    case 'open':
      await source.close(); // a stream left open by a failed read is replaced
      source.open(decodeStart(request.start));
      return null;
    case 'next':
      return read(request.max);
    case 'close':
      await source.close();
      return null;
    case 'ring':
      router = new RingRouter(request.epochs);
      return null;
    case 'shutdown':
      await source.close();
      await client.close();
      return null;
    case 'ping':
      return ping();
    case 'snapshotBegin':
      return encodeSnapshotStart(await snapshots.begin());
    case 'snapshotRead':
      return encodeSnapshotBatch(await snapshots.read(decodeSnapshotRequest(request.batch)));
  }
}

/** Classifies an error where its class is still known: here, before it crosses to the main thread. */
function encodeError(error: unknown): WireError {
  const e = error instanceof Error ? error : new Error(String(error));
  const { code, codeName } = e as { code?: unknown; codeName?: unknown };
  return {
    name: e.name,
    message: e.message,
    ...(e.stack === undefined ? {} : { stack: e.stack }),
    ...(typeof code === 'number' || typeof code === 'string' ? { code } : {}),
    ...(typeof codeName === 'string' ? { codeName } : {}),
    failure: classifyMongoError(e),
  };
}

async function answer(request: ReaderRequest): Promise<void> {
  let reply: ReaderReply;
  try {
    reply = { id: request.id, ok: true, result: await handle(request) };
  } catch (error) {
    reply = { id: request.id, ok: false, error: encodeError(error) };
  }
  port.postMessage(reply);
  if (request.op === 'shutdown') port.close();
}

let queue: Promise<void> = Promise.resolve();
port.on('message', (request: ReaderRequest) => {
  if (request.op === 'ping') void answer(request);
  else queue = queue.then(() => answer(request));
});
