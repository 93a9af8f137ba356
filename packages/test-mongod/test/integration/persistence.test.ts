// Persistence with dataDir: documents, collection metadata, cluster time and the change history
// survive a restart, also after kill -9 of the CLI process; a change stream resumed with a token
// from before the restart continues exactly after it.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BSON } from 'mongodb';
import type { ChangeStreamDocument, Document, ResumeToken, Timestamp } from 'mongodb';
import { startMongoServer } from '../../src/index.js';
import { killCli, startCli } from '../helpers/cli.js';
import { useTestResources } from '../helpers/resources.js';
import { take } from '../helpers/streams.js';

const { connect, tmpDir, server, cli } = useTestResources('cq-mongod-');

describe('restart with dataDir', () => {
  it('keeps documents, metadata, cluster time and history; resumes after a token from before', async () => {
    const dir = tmpDir();
    let s = await startMongoServer({ dataDir: dir });
    let c = await connect(s.uri);
    const d = c.db('p');
    await d.createCollection('c', { changeStreamPreAndPostImages: { enabled: true } });
    const cs = d.collection('c').watch();
    await cs.tryNext();
    await d.collection('c').insertMany([
      { _id: 1, v: 1 },
      { _id: 2, v: 2 },
      { _id: 3, v: 3 },
    ] as never[]);
    await d.collection('c').updateOne({ _id: 1 } as never, { $set: { v: 10 } });
    const evs = await take(cs, 4);
    await cs.close();
    const [info] = await d.listCollections({ name: 'c' }).toArray();
    const lastTime = (evs[3] as { clusterTime: Timestamp }).clusterTime;
    await c.close();
    await s.stop();

    s = await startMongoServer({ dataDir: dir });
    server(s);
    c = await connect(s.uri);
    const d2 = c.db('p');
    expect(await d2.collection('c').find().toArray()).toEqual([
      { _id: 1, v: 10 },
      { _id: 2, v: 2 },
      { _id: 3, v: 3 },
    ]);
    const [info2] = await d2.listCollections({ name: 'c' }).toArray();
    expect(info2).toEqual(info);
    const resumed = d2
      .collection('c')
      .watch([], { resumeAfter: evs[1]?._id as ResumeToken, fullDocumentBeforeChange: 'required' });
    await d2.collection('c').insertOne({ _id: 4 } as never);
    const rest = (await take(resumed, 3)) as (ChangeStreamDocument<Document> &
      Record<string, unknown>)[];
    expect(rest.map((e) => e.operationType)).toEqual(['insert', 'update', 'insert']);
    expect(rest[0]?.documentKey).toEqual({ _id: 3 });
    expect(rest[1]?.fullDocumentBeforeChange).toEqual({ _id: 1, v: 1 });
    expect((rest[2]?.clusterTime as Timestamp).greaterThan(lastTime)).toBe(true);
    await resumed.close();
  });

  it('logs a write whose record exceeds 17 MB (an update of a 9 MB document with pre-images)', async () => {
    const dir = tmpDir();
    let s = await startMongoServer({ dataDir: dir });
    let c = await connect(s.uri);
    const d = c.db('p');
    await d.createCollection('big', { changeStreamPreAndPostImages: { enabled: true } });
    const MB = 1024 * 1024;
    await d.collection('big').insertOne({ _id: 1, v: 'a'.repeat(9 * MB) } as never);
    await d.collection('big').updateOne({ _id: 1 } as never, { $set: { v: 'b'.repeat(9 * MB) } });
    await c.close();
    await s.stop();
    s = await startMongoServer({ dataDir: dir });
    server(s);
    c = await connect(s.uri);
    const doc = await c.db('p').collection('big').findOne({ _id: 1 } as never);
    expect(doc?.v).toBe('b'.repeat(9 * MB));
  });

  it('compacts the log into a snapshot and still restores data and the history window', async () => {
    const dir = tmpDir();
    const history = { maxEvents: 1500 };
    let s = await startMongoServer({ dataDir: dir, history }, { compactBytes: 64 * 1024 });
    let c = await connect(s.uri);
    const coll = c.db('p').collection('c');
    for (let i = 0; i < 20; i++) {
      await coll.insertMany(
        Array.from({ length: 100 }, (_, j) => ({
          _id: i * 100 + j,
          pad: 'x'.repeat(50),
        })) as never[],
      );
    }
    const before = (await c.db('admin').command({ hello: 1 })).operationTime as Timestamp;
    await coll.deleteMany({ _id: { $lt: 1000 } } as never);
    await c.close();
    await s.stop();
    const log = fs.readFileSync(path.join(dir, 'changeq-mongod.log'));
    const first = BSON.deserialize(log.subarray(8, 8 + log.readUInt32LE(0)));
    expect(first.k).toBe('snap');
    s = await startMongoServer({ dataDir: dir, history });
    server(s);
    c = await connect(s.uri);
    expect(await c.db('p').collection('c').countDocuments()).toBe(1000);
    const resumed = c.db('p').collection('c').watch([], { startAtOperationTime: before });
    // startAtOperationTime includes the event at that time: the last insert, then the deletes.
    const next = (await take(resumed, 2)) as unknown as {
      operationType: string;
      documentKey: unknown;
    }[];
    expect(next.map((e) => e.operationType)).toEqual(['insert', 'delete']);
    expect(next[0]?.documentKey).toEqual({ _id: 1999 });
    expect(next[1]?.documentKey).toEqual({ _id: 0 });
    await resumed.close();
  });

  it('keeps serving writes while it compacts, and keeps those writes and their events', async () => {
    const dir = tmpDir();
    const lines: string[] = [];
    let s = await startMongoServer(
      { dataDir: dir, log: (l) => lines.push(l) },
      { compactBytes: 4 * 1024 * 1024 },
    );
    let c = await connect(s.uri);
    const coll = c.db('p').collection('c');
    const cs = coll.watch();
    await cs.tryNext();
    const pad = 'x'.repeat(200);
    const compacting = (): boolean => lines.some((l) => l.includes('compacting the log'));
    let batches = 0;
    while (!compacting()) {
      await coll.insertMany(
        Array.from({ length: 1000 }, (_, j) => ({ _id: batches * 1000 + j, pad })) as never[],
      );
      batches++;
    }
    // The compaction has just begun and runs a slice per event-loop turn: writes go on meanwhile.
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        coll.updateOne({ _id: i } as never, { $set: { during: i } }),
      ),
    );
    const done = (): string | undefined => lines.find((l) => /compacted log from [1-9]/.test(l));
    for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 50));
    const kept = Number(/\((\d+) writes made meanwhile kept\)/.exec(done() ?? '')?.[1]);
    expect(kept).toBeGreaterThan(0);
    const events = await take(cs, batches * 1000 + 300);
    const token = events.at(-1)?._id as ResumeToken;
    await cs.close();
    await coll.insertOne({ _id: 'after' } as never);
    await c.close();
    await s.stop();

    s = await startMongoServer({ dataDir: dir });
    server(s);
    c = await connect(s.uri);
    const again = c.db('p').collection('c');
    expect(await again.countDocuments()).toBe(batches * 1000 + 1);
    expect(await again.countDocuments({ during: { $exists: true } })).toBe(300);
    const resumed = again.watch([], { resumeAfter: token });
    const next = (await take(resumed, 1)) as unknown as { documentKey?: unknown }[];
    expect(next[0]?.documentKey).toEqual({ _id: 'after' });
    await resumed.close();
  });

  it('discards a torn record at the end of the log', async () => {
    const dir = tmpDir();
    let s = await startMongoServer({ dataDir: dir });
    let c = await connect(s.uri);
    await c
      .db('p')
      .collection('c')
      .insertOne({ _id: 1 } as never);
    await c.close();
    await s.stop();
    fs.appendFileSync(path.join(dir, 'changeq-mongod.log'), Buffer.from([200, 0, 0, 0, 1, 2, 3]));
    s = await startMongoServer({ dataDir: dir });
    server(s);
    c = await connect(s.uri);
    expect(await c.db('p').collection('c').find().toArray()).toEqual([{ _id: 1 }]);
    await c
      .db('p')
      .collection('c')
      .insertOne({ _id: 2 } as never);
    expect(await c.db('p').collection('c').countDocuments()).toBe(2);
  });
});

describe('CLI process (kill -9 and restart on the same --dbpath)', () => {
  it('prints one ready line, rejects unknown flags with exit 2 and exits 0 on SIGTERM', async () => {
    const bad = startCli(['--no-such-flag']);
    await expect(bad).rejects.toThrow(/exited with 2/);
    const s = await startCli(['--port', '0']);
    cli(s);
    expect(s.uri).toBe(`mongodb://127.0.0.1:${s.port}/?replicaSet=rs0`);
    expect(s.pid).toBe(s.child.pid);
    const c = await connect(s.uri);
    await c.db('x').collection('y').insertOne({ a: 1 });
    await c.close(true);
    expect(await killCli(s, 'SIGTERM')).toBe(0);
  });

  it('loses no acknowledged write and no change event across kill -9, and the driver resumes by itself', async () => {
    const dir = tmpDir();
    let s = await startCli(['--dbpath', dir, '--port', '0']);
    cli(s);
    const port = s.port;
    const writer = await connect(`mongodb://127.0.0.1:${port}/?replicaSet=rs0`);
    const reader = await connect(`mongodb://127.0.0.1:${port}/?replicaSet=rs0`);
    const coll = writer.db('p').collection('c');
    await writer.db('p').createCollection('c');
    const stream = reader.db('p').collection('c').watch([], { maxAwaitTimeMS: 100 });
    await stream.tryNext();
    const seen: number[] = [];
    const consuming = (async () => {
      for await (const ev of stream) {
        if (ev.operationType === 'insert') seen.push((ev.fullDocument as { i: number }).i);
        if (seen.length >= 400) break;
      }
    })();
    for (let i = 0; i < 200; i++) await coll.insertOne({ i });
    // Acknowledged writes are in the log; kill without warning and restart on the same port.
    await killCli(s, 'SIGKILL');
    s = await startCli(['--dbpath', dir, '--port', String(port)]);
    cli(s);
    for (let i = 200; i < 400; i++) await coll.insertOne({ i });
    await consuming;
    await stream.close();
    expect(seen).toEqual(Array.from({ length: 400 }, (_, i) => i));
    expect(await coll.countDocuments()).toBe(400);
  });
});

describe('data directory lock', () => {
  it('refuses a second server on the same dataDir while the first runs', async () => {
    const dir = tmpDir();
    const s = await startMongoServer({ dataDir: dir });
    server(s);
    await expect(startMongoServer({ dataDir: dir })).rejects.toThrow(/in use/);
  });
});
