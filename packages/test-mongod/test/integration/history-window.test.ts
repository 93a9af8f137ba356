// The bounded change history ("oplog window"): resuming from before the window fails with
// ChangeStreamHistoryLost (286), as on a real server whose oplog has rolled over
// (manual: Resume a Change Stream; Change Streams Production Recommendations).
import { afterEach, describe, expect, it } from 'vitest';
import { MongoClient, MongoServerError } from 'mongodb';
import type { ResumeToken, Timestamp } from 'mongodb';
import { startMongoServer } from '../../src/index.js';
import type { MongoServerOptions, RunningMongoServer } from '../../src/index.js';
import { sleep, take } from '../helpers/streams.js';

let server: RunningMongoServer | undefined;
let client: MongoClient | undefined;

async function start(options: MongoServerOptions): Promise<MongoClient> {
  server = await startMongoServer(options);
  client = new MongoClient(server.uri);
  await client.connect();
  return client;
}

afterEach(async () => {
  await client?.close(true);
  await server?.stop();
  client = undefined;
  server = undefined;
});

async function openAt(c: MongoClient, spec: Record<string, unknown>): Promise<unknown> {
  return c
    .db('w')
    .command({ aggregate: 'c', pipeline: [{ $changeStream: spec }], cursor: {} })
    .catch((e: unknown) => e);
}

describe('history window by count', () => {
  it('fails with 286 for tokens and times older than the window, works inside it', async () => {
    const c = await start({ history: { maxEvents: 5 } });
    const coll = c.db('w').collection('c');
    await c.db('w').createCollection('c');
    const cs = coll.watch([], { maxAwaitTimeMS: 50 });
    await cs.tryNext();
    // Read each event as it comes, so the live cursor itself stays inside the window.
    const evs = [];
    for (let i = 0; i < 10; i++) {
      await coll.insertOne({ i });
      evs.push(...(await take(cs, 1)));
    }
    await cs.close();
    const old = (await openAt(c, { resumeAfter: evs[0]?._id })) as MongoServerError;
    expect(old).toBeInstanceOf(MongoServerError);
    expect(old.code).toBe(286);
    expect(old.codeName).toBe('ChangeStreamHistoryLost');
    const oldTime = (await openAt(c, {
      startAtOperationTime: evs[2]?.clusterTime as Timestamp,
    })) as MongoServerError;
    expect(oldTime.code).toBe(286);
    const oldStartAfter = (await openAt(c, { startAfter: evs[4]?._id })) as MongoServerError;
    expect(oldStartAfter.code).toBe(286);
    const ok = c
      .db('w')
      .collection('c')
      .watch([], { resumeAfter: evs[6]?._id as ResumeToken });
    const rest = await take(ok, 3);
    expect(
      rest.map((e) => (e as unknown as { fullDocument: { i: number } }).fullDocument.i),
    ).toEqual([7, 8, 9]);
    await ok.close();
  });

  it('never silently starts from now: a token of an unknown event fails', async () => {
    const c = await start({});
    await c.db('w').createCollection('c');
    const hello = await c.db('admin').command({ hello: 1 });
    const t = hello.operationTime as Timestamp;
    const fake = {
      _data:
        `82${t.t.toString(16).padStart(8, '0')}${(t.i + 1000).toString(16).padStart(8, '0')}01000000000001`.toUpperCase(),
    };
    const err = (await openAt(c, { resumeAfter: fake })) as MongoServerError;
    expect(err).toBeInstanceOf(MongoServerError);
    expect(err.code).toBe(280);
  });

  it('a live cursor that falls out of the window fails with 286 on getMore', async () => {
    const c = await start({ history: { maxEvents: 3 } });
    const d = c.db('w');
    await d.createCollection('c');
    const agg = await d.command({
      aggregate: 'c',
      pipeline: [{ $changeStream: {} }],
      cursor: { batchSize: 0 },
    });
    await d.collection('c').insertMany(Array.from({ length: 10 }, (_, i) => ({ i })));
    const err = (await d
      .command({ getMore: agg.cursor.id, collection: 'c' })
      .catch((e: unknown) => e)) as MongoServerError;
    expect(err.code).toBe(286);
  });
});

describe('history window by age', () => {
  it('drops entries older than maxAgeSeconds', async () => {
    const c = await start({ history: { maxAgeSeconds: 1 } });
    const coll = c.db('w').collection('c');
    await c.db('w').createCollection('c');
    const cs = coll.watch([], { maxAwaitTimeMS: 50 });
    await cs.tryNext();
    await coll.insertOne({ i: 0 });
    const [first] = await take(cs, 1);
    await cs.close();
    await sleep(1600);
    await coll.insertOne({ i: 1 });
    const err = (await openAt(c, { resumeAfter: first?._id })) as MongoServerError;
    expect(err.code).toBe(286);
  });
});
