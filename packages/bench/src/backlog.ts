/**
 * The backlog every drain reads: `events` small inserts into one collection, written before any
 * figure starts, and the point just before them (an operation time, and the same as the ISO
 * second the changeq ingest's START_AT takes).
 */
import { type MongoClient, type ResumeToken, type Timestamp } from 'mongodb';

export interface Backlog {
  db: string;
  coll: string;
  events: number;
  /** startAtOperationTime of the first backlog event's second. */
  from: Timestamp;
  /** The same point as START_AT for the changeq ingest (whole seconds). */
  startAt: string;
  /** The resume token of a marker event just before the backlog (for resumeAfter). */
  markerToken: ResumeToken;
  fillMs: number;
}

export async function fillBacklog(client: MongoClient, events: number): Promise<Backlog> {
  const coll = client.db('bench').collection('events');
  // A marker event before the backlog: its token is where a resumeAfter starts.
  const before = (await client.db('admin').command({ hello: 1 })).operationTime as Timestamp;
  const markerStream = coll.watch([], { startAtOperationTime: before });
  await coll.insertOne({ marker: true });
  const marker = await markerStream.next();
  await markerStream.close();
  // START_AT has whole seconds: let the clock pass into a second of its own, mark it with a
  // write elsewhere (cluster time moves with writes), and start from there.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await client.db('warmup').collection('x').insertOne({});
  const hello = await client.db('admin').command({ hello: 1 });
  const from = hello.operationTime as Timestamp;
  const started = performance.now();
  for (let i = 0; i < events; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, events - i) }, (_, j) => ({
      n: i + j,
      name: `item ${i + j}`,
      tags: ['a', 'b'],
      at: new Date(),
    }));
    await coll.insertMany(batch);
  }
  return {
    db: 'bench',
    coll: 'events',
    events,
    from,
    startAt: new Date(from.high * 1000).toISOString(),
    markerToken: marker._id,
    fillMs: performance.now() - started,
  };
}
