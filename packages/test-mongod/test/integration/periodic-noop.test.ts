// Periodic no-op writes. An idle replica-set primary writes a no-op oplog entry every
// periodicNoopIntervalSecs (default 10 s; manual: MongoDB Server Parameters — Replication,
// periodicNoopIntervalSecs; the Max Staleness spec's idleWritePeriodMS), so the cluster time
// keeps moving, and with it the high-water-mark postBatchResumeToken of a change stream that
// sees no events (manual: Change Streams — Resume a Change Stream; driver Change Streams spec,
// postBatchResumeToken). A no-op is not a change: no stream ever returns an event for it
// (manual: Change Events). These tests need this server's options (interval, restarts), so they
// live here and not in the conformance suite.
import { startNode } from '@changeq/testkit';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MongoServerError, Timestamp } from 'mongodb';
import type { MongoClient } from 'mongodb';
import type { ChangeStream, Document, ResumeToken } from 'mongodb';
import { startMongoServer } from '../../src/index.js';
import { decodeToken, hwmToken } from '../../src/history/token.js';
import type { Ts } from '../../src/history/clock.js';
import { CLI, killCli, startCli } from '../helpers/cli.js';
import { useTestResources } from '../helpers/resources.js';
import { sleep, take } from '../helpers/streams.js';

const { start, connect, tmpDir, server, cli } = useTestResources('cq-mongod-noop-');

/** Short awaitData waits: an empty getMore answers after 50 ms. */
const FAST = { maxAwaitTimeMS: 50 } as const;
const REPLAY = { ...FAST, showExpandedEvents: true } as const;

/** The stream's current resume token after an empty batch (tryNext() returned null). */
async function idleToken(cs: ChangeStream<Document>): Promise<ResumeToken> {
  expect(await cs.tryNext()).toBeNull();
  const token = cs.resumeToken;
  expect(token).toBeDefined();
  return token;
}

function tokenData(token: ResumeToken): string {
  return (token as { _data: string })._data;
}

function tokenTs(token: ResumeToken): Ts {
  return decodeToken(token).ts;
}

/** The high-water-mark token an empty batch carries when `time` is the latest history entry's. */
function hwmAt(time: Timestamp): ResumeToken {
  return { _data: hwmToken({ t: time.t, i: time.i }) };
}

function after(a: Ts, b: Ts): boolean {
  return a.t > b.t || (a.t === b.t && a.i > b.i);
}

async function operationTime(c: MongoClient): Promise<Timestamp> {
  return (await c.db('admin').command({ ping: 1 })).operationTime as Timestamp;
}

async function historyEntries(c: MongoClient): Promise<number> {
  const status = await c.db('admin').command({ serverStatus: 1 });
  return (status.changeq as { historyEntries: number }).historyEntries;
}

/** Poll tryNext() for `ms`, failing on any event; returns the last resume token. */
async function idleFor(cs: ChangeStream<Document>, ms: number): Promise<ResumeToken> {
  const deadline = Date.now() + ms;
  let token = await idleToken(cs);
  while (Date.now() < deadline) {
    await sleep(50);
    token = await idleToken(cs);
  }
  return token;
}

describe('periodicNoopIntervalSecs (manual: MongoDB Server Parameters — Replication)', () => {
  it('advances an idle change stream’s resume token past each no-op, without any write', async () => {
    const { c } = await start({ noopIntervalMs: 200 });
    const d = c.db('n');
    await d.createCollection('c');
    const cs = d.collection('c').watch([], FAST);
    const t0 = await idleToken(cs);
    const seen = [tokenData(t0)];
    const deadline = Date.now() + 10_000;
    while (seen.length < 4 && Date.now() < deadline) {
      await sleep(100);
      const t = tokenData(await idleToken(cs));
      if (t !== seen[seen.length - 1]) seen.push(t);
    }
    // Three advances without a write, each sorting after the one before.
    expect(seen.length).toBe(4);
    expect([...seen].sort()).toEqual(seen);
    // The empty batch's token is a high-water mark at the latest no-op's cluster time (as
    // MongoDB's: the latest oplog time the stream has scanned), which the server now reports; a
    // later no-op may have moved it on since.
    const noopTime = await operationTime(c);
    const latest = await idleToken(cs);
    expect(decodeToken(latest).kind).toBe('hwm');
    expect(after({ t: noopTime.t, i: noopTime.i }, tokenTs(latest))).toBe(false);
    await cs.close();
  });

  it('does not move an idle stream’s resume token when the no-op is disabled (0)', async () => {
    const { c } = await start({ noopIntervalMs: 0 });
    const d = c.db('n');
    await d.createCollection('c');
    const cs = d.collection('c').watch([], FAST);
    const t0 = await idleToken(cs);
    const time0 = await operationTime(c);
    const entries0 = await historyEntries(c);
    await sleep(800);
    expect(tokenData(await idleToken(cs))).toBe(tokenData(t0));
    expect((await operationTime(c)).equals(time0)).toBe(true);
    expect(await historyEntries(c)).toBe(entries0);
    await cs.close();
  });

  it('writes a no-op only after an interval without writes; 10 s by default like MongoDB', async () => {
    const { c } = await start({ noopIntervalMs: 400 });
    const coll = c.db('n').collection('c');
    await coll.insertOne({ i: -1 });
    const before = await historyEntries(c);
    let writes = 0;
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      await coll.insertOne({ i: writes++ });
      await sleep(20);
    }
    // Busy: every entry is one of our inserts, no no-op among them.
    expect((await historyEntries(c)) - before).toBe(writes);
    await sleep(1300);
    // Idle: at least two no-ops (one per 400 ms interval after the first quiet one).
    expect((await historyEntries(c)) - before - writes).toBeGreaterThanOrEqual(2);
    const params = await c.db('admin').command({ getParameter: 1, periodicNoopIntervalSecs: 1 });
    expect(params.periodicNoopIntervalSecs).toBe(0.4);

    const { c: dflt } = await start({});
    const p = await dflt.db('admin').command({
      getParameter: 1,
      periodicNoopIntervalSecs: 1,
      writePeriodicNoops: 1,
    });
    expect(p.periodicNoopIntervalSecs).toBe(10);
    expect(p.writePeriodicNoops).toBe(true);
  });

  it('moves hello’s lastWrite opTime like any write', async () => {
    const { c } = await start({ noopIntervalMs: 100 });
    const h0 = await c.db('admin').command({ hello: 1 });
    await sleep(400);
    const h1 = await c.db('admin').command({ hello: 1 });
    const ts0 = h0.lastWrite.opTime.ts as Timestamp;
    const ts1 = h1.lastWrite.opTime.ts as Timestamp;
    expect(ts1.greaterThan(ts0)).toBe(true);
  });
});

describe('replSetStepDown (manual): only the primary writes no-ops', () => {
  it('writes none while stepped down and starts again once primary', async () => {
    const { s, c } = await start({ noopIntervalMs: 100 });
    await c.db('admin').command({ replSetStepDown: 2, secondaryCatchUpPeriodSecs: 0, force: true });
    const direct = await connect(`mongodb://${s.host}:${s.port}/?directConnection=true`);
    const entries = await historyEntries(direct);
    await sleep(600);
    expect(await historyEntries(direct)).toBe(entries);
    const deadline = Date.now() + 10_000;
    while (!(await direct.db('admin').command({ hello: 1 })).isWritablePrimary) {
      if (Date.now() > deadline) throw new Error('never became primary again');
      await sleep(100);
    }
    await sleep(400);
    expect(await historyEntries(direct)).toBeGreaterThan(entries);
  });
});

describe('Resume a Change Stream (manual: Change Streams) across periodic no-ops', () => {
  it('startAfter an idle stream’s advanced token sees the next insert exactly once', async () => {
    const { c } = await start({ noopIntervalMs: 100 });
    const coll = c.db('n').collection('c');
    await coll.insertOne({ _id: 'before' } as never);
    const cs = coll.watch([], { ...FAST, startAtOperationTime: await operationTime(c) });
    const [first] = await take(cs, 1);
    expect(first?.operationType).toBe('insert');
    const eventToken = cs.resumeToken;
    const token = await idleFor(cs, 600);
    expect(tokenData(token) > tokenData(eventToken)).toBe(true);
    await cs.close();
    await coll.insertOne({ _id: 'next' } as never);
    await coll.insertOne({ _id: 'then' } as never);
    for (const opt of ['startAfter', 'resumeAfter'] as const) {
      const resumed = coll.watch([], { ...FAST, [opt]: token });
      const evs = await take(resumed, 2);
      expect(evs.map((e) => (e as { documentKey: unknown }).documentKey)).toEqual([
        { _id: 'next' },
        { _id: 'then' },
      ]);
      // Nothing else: no repeat, and no event for the no-ops in between.
      expect(await resumed.tryNext()).toBeNull();
      expect(await resumed.tryNext()).toBeNull();
      await resumed.close();
    }
  });

  it('resumes from such a token after a restart on the same dataDir (no-ops are logged)', async () => {
    const dir = tmpDir();
    let s = await startMongoServer({ dataDir: dir, noopIntervalMs: 100 });
    let c = await connect(s.uri);
    const coll = c.db('n').collection('c');
    await coll.insertOne({ _id: 'before' } as never);
    const cs = coll.watch([], FAST);
    const token = await idleFor(cs, 500);
    await cs.close();
    await c.close();
    await s.stop();
    // Restart (without no-ops, so only the log can tell the time): the cluster time comes back
    // at the last no-op's, so the next write gets a later time even within the same second, and
    // a stream resumed from the token cannot skip it.
    s = await startMongoServer({ dataDir: dir, noopIntervalMs: 0 });
    server(s);
    c = await connect(s.uri);
    const restored = await operationTime(c);
    expect(tokenData(token)).toBe(tokenData(hwmAt(restored)));
    const coll2 = c.db('n').collection('c');
    const resumed = coll2.watch([], { ...FAST, startAfter: token });
    expect(await resumed.tryNext()).toBeNull();
    await coll2.insertOne({ _id: 'next' } as never);
    const [ev] = await take(resumed, 1);
    expect((ev as { documentKey: unknown }).documentKey).toEqual({ _id: 'next' });
    const t = (ev as { clusterTime: Timestamp }).clusterTime;
    // At or after the token's time (a high-water mark at X sorts before an event at X).
    expect(after(tokenTs(token), { t: t.t, i: t.i })).toBe(false);
    await sleep(300);
    expect(await resumed.tryNext()).toBeNull();
    await resumed.close();
  });

  it('keeps a polled idle stream’s token inside an age window its last event has left', async () => {
    const { c } = await start({ noopIntervalMs: 200, history: { maxAgeSeconds: 1 } });
    const coll = c.db('n').collection('c');
    await c.db('n').createCollection('c');
    const cs = coll.watch([], FAST);
    await idleToken(cs);
    await coll.insertOne({ _id: 'old' } as never);
    const [old] = await take(cs, 1);
    const token = await idleFor(cs, 2200);
    await cs.close();
    const lost = await coll
      .watch([], { resumeAfter: old?._id as ResumeToken })
      .tryNext()
      .catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(MongoServerError);
    expect((lost as MongoServerError).code).toBe(286);
    const resumed = coll.watch([], { ...FAST, startAfter: token });
    expect(await resumed.tryNext()).toBeNull();
    await coll.insertOne({ _id: 'new' } as never);
    const [ev] = await take(resumed, 1);
    expect((ev as { documentKey: unknown }).documentKey).toEqual({ _id: 'new' });
    await resumed.close();
  });

  it('does not count no-ops in the history window by event count', async () => {
    const { c } = await start({ noopIntervalMs: 50, history: { maxEvents: 3 } });
    const coll = c.db('n').collection('c');
    await c.db('n').createCollection('c');
    const cs = coll.watch([], FAST);
    await idleToken(cs);
    await coll.insertMany([{ i: 0 }, { i: 1 }, { i: 2 }]);
    const evs = await take(cs, 3);
    await cs.close();
    const entries = await historyEntries(c);
    await sleep(600);
    expect(await historyEntries(c)).toBeGreaterThan(entries + 3);
    // Many no-ops later, the three events are still in the window.
    const resumed = coll.watch([], { ...FAST, resumeAfter: evs[0]?._id as ResumeToken });
    const rest = await take(resumed, 2);
    expect(
      rest.map((e) => (e as unknown as { fullDocument: { i: number } }).fullDocument.i),
    ).toEqual([1, 2]);
    expect(await resumed.tryNext()).toBeNull();
    await resumed.close();
  });
});

describe('Change Events (manual: Change Events): a no-op is not a change', () => {
  it('no collection, database or deployment stream delivers an event for a no-op', async () => {
    const { c } = await start({ noopIntervalMs: 50 });
    const d = c.db('n');
    await d.createCollection('c');
    // Just after the create, so a replay from here starts with the no-ops.
    const created = await operationTime(c);
    const startTime = new Timestamp({ t: created.t, i: created.i + 1 });
    const streams: ChangeStream<Document>[] = [];
    for (const showExpandedEvents of [false, true]) {
      const opts = { ...FAST, showExpandedEvents };
      streams.push(d.collection('c').watch([], opts), d.watch([], opts), c.watch([], opts));
    }
    for (const cs of streams) await idleToken(cs);
    const entries = await historyEntries(c);
    for (const cs of streams) await idleFor(cs, 100);
    await sleep(400);
    expect(await historyEntries(c)).toBeGreaterThanOrEqual(entries + 4);
    await d.collection('c').insertOne({ _id: 1 } as never);
    for (const cs of streams) {
      const [ev] = await take(cs, 1);
      expect(ev?.operationType).toBe('insert');
      expect(await cs.tryNext()).toBeNull();
      await cs.close();
    }
    // Replaying the whole stretch from before the no-ops: still only the real changes.
    for (const watch of [
      () => d.collection('c').watch([], { ...REPLAY, startAtOperationTime: startTime }),
      () => d.watch([], { ...REPLAY, startAtOperationTime: startTime }),
      () => c.watch([], { ...REPLAY, startAtOperationTime: startTime }),
    ]) {
      const cs = watch();
      const [ev] = await take(cs, 1);
      expect(ev?.operationType).toBe('insert');
      expect(await cs.tryNext()).toBeNull();
      await cs.close();
    }
  });
});

describe('CLI --noop-interval-ms and shutdown', () => {
  it('takes the interval from the command line and rejects a bad value with exit 2', async () => {
    const bad = await startCli(['--noop-interval-ms', 'soon']).catch((e: unknown) => e);
    expect(String(bad)).toMatch(
      /exited with 2.*--noop-interval-ms expects a non-negative integer/s,
    );
    const s = await startCli(['--port', '0', '--noop-interval-ms', '100']);
    cli(s);
    const c = await connect(s.uri);
    await c.db('n').createCollection('c');
    const cs = c.db('n').collection('c').watch([], FAST);
    const t0 = tokenData(await idleToken(cs));
    await sleep(500);
    expect(tokenData(await idleToken(cs)) > t0).toBe(true);
    await cs.close();
    expect(await killCli(s, 'SIGTERM')).toBe(0);
  });

  it('lets a process exit by itself once the server is stopped', async () => {
    const script = `
      import { startMongoServer } from ${JSON.stringify(path.join(path.dirname(CLI), 'index.js'))};
      const s = await startMongoServer({ noopIntervalMs: 20 });
      await new Promise((r) => setTimeout(r, 200));
      await s.stop();
    `;
    // Ended by the kit after the test if it is still running.
    const child = startNode('--input-type=module', ['-e', script]);
    const code = await Promise.race([
      child.exited.then((exit) => exit.code),
      sleep(10_000).then(() => 'still running' as const),
    ]);
    expect(code).toBe(0);
  });
});
