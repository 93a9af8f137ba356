/**
 * The stream reader thread: owns the change stream's MongoDB connection, reads batches, and
 * turns their events into planned jobs (routing, Extended JSON, job ids), so that the main
 * thread only commits to Redis. Decoding BSON and encoding jobs cost about as much CPU as
 * BullMQ's own work per job; on separate threads the two overlap.
 *
 * Requests are handled one at a time, in the order they were sent.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { MongoClient, type Document } from 'mongodb';
import { Router } from '@changeq/shared';
import type { PlannedJob } from '@changeq/store';
import { ChangeSource, namespaceOf, planEvent } from '@changeq/source/stream';
import { encodeError } from '../failures.js';
import {
  decodeMatch,
  decodeStart,
  type EventTally,
  type ReaderInit,
  type ReaderReply,
  type ReaderRequest,
  type WireBatch,
} from './protocol.js';

const port = parentPort;
if (!port) throw new Error('the stream reader runs as a worker thread of the ingest');
const init = workerData as ReaderInit;

const client = new MongoClient(init.mongodbUri, {
  appName: init.appName,
  serverSelectionTimeoutMS: init.serverSelectionTimeoutMS,
});
const source = new ChangeSource(client, {
  ...init.source,
  match: decodeMatch(init.source.matchJson),
});
const router = new Router(init.workers);

async function read(max: number): Promise<WireBatch> {
  const batch = await source.next(max);
  const jobs: PlannedJob[] = [];
  const tally = new Map<string, EventTally>();
  for (const event of batch.events) {
    for (const job of planEvent(event, router)) jobs.push(job);
    const namespace = namespaceOf(event as Document);
    const key = `${namespace}\u0000${event.operationType}`;
    const entry = tally.get(key);
    if (entry) entry.count += 1;
    else tally.set(key, { namespace, operation: event.operationType, count: 1 });
  }
  const last = batch.events[batch.events.length - 1] as
    | {
        clusterTime?: { getHighBitsUnsigned(): number; getLowBitsUnsigned(): number };
        wallTime?: Date;
      }
    | undefined;
  return {
    count: batch.events.length,
    jobs,
    tally: [...tally.values()],
    last: last
      ? {
          clusterTime: last.clusterTime
            ? {
                t: last.clusterTime.getHighBitsUnsigned(),
                i: last.clusterTime.getLowBitsUnsigned(),
              }
            : null,
          wallTime: last.wallTime ?? null,
        }
      : null,
    token: batch.token,
    invalidated: batch.invalidated,
  };
}

async function handle(request: ReaderRequest): Promise<WireBatch | null> {
  switch (request.op) {
    case 'open':
      await source.close(); // a stream left open by a failed read is replaced
      source.open(decodeStart(request.start));
      return null;
    case 'next':
      return read(request.max);
    case 'close':
      await source.close();
      return null;
    case 'shutdown':
      await source.close();
      await client.close();
      return null;
  }
}

let queue: Promise<void> = Promise.resolve();
port.on('message', (request: ReaderRequest) => {
  queue = queue.then(async () => {
    let reply: ReaderReply;
    try {
      reply = { id: request.id, ok: true, result: await handle(request) };
    } catch (error) {
      reply = { id: request.id, ok: false, error: encodeError(error) };
    }
    port.postMessage(reply);
    if (request.op === 'shutdown') port.close();
  });
});
