/**
 * The whole Ingest, in-process, on fakes (test/fakes.ts): where it starts, the order of its
 * commits and saves, backpressure, and what it does on each kind of failure. The process tests
 * (behaviour, exactly-once, snapshot) run the same code against real servers and real crashes.
 */
import { ReplyError } from 'ioredis';
import { Timestamp } from 'mongodb';
import { describe, expect, test } from 'vitest';
import { UserError } from '@changeq/shared';
import { waitFor } from '@changeq/testkit';
import { FencedError } from '@changeq/store';
import { Ingest, type IngestSettings, type IngestState } from '../src/ingest.js';
import type { LeadershipPort } from '../src/leadership.js';
import { ReadError } from '../src/ports.js';
import {
  FakeClock,
  FakeEnqueuer,
  FakeReader,
  FakeRedis,
  FakeStore,
  Journal,
  batch,
  capturingLogger,
  position,
  settings,
  token,
} from './fakes.js';

function make(overrides: Partial<IngestSettings> = {}) {
  const journal = new Journal();
  const reader = new FakeReader(journal);
  const store = new FakeStore(journal);
  const enqueuer = new FakeEnqueuer(journal);
  const redis = new FakeRedis();
  const clock = new FakeClock();
  const { log, lines } = capturingLogger();
  const ingest = new Ingest(settings(overrides), { reader, redis, store, enqueuer, clock }, log);
  const states: IngestState[] = [];
  ingest.on('state', (state) => states.push(state));
  const committed: number[] = [];
  ingest.on('committed', ({ added }) => committed.push(added));
  const logged = (text: string) => lines.some((line) => String(line.msg).includes(text));
  /** Starts it; `run` settles when start() does. */
  const run = () => {
    const settled = ingest.start();
    settled.catch(() => undefined);
    return settled;
  };
  return { ingest, journal, reader, store, enqueuer, redis, clock, states, committed, logged, run };
}

/** Until `condition` holds (the ingest runs on the event loop beside the test). */
const until = (condition: () => boolean, what: string) => waitFor(condition, what, 5000);

describe('the Ingest, on fakes', () => {
  test('reaches MongoDB through the reader, trying again until the connect timeout', async () => {
    const patient = make({ connectTimeoutMs: 10_000 });
    patient.reader.refusals = 3;
    const running = patient.run();
    await until(() => patient.journal.of('open').length >= 1, 'the stream to open');
    expect(patient.clock.sleeps.slice(0, 3)).toEqual([50, 100, 200]);
    await patient.ingest.stop();
    await running;

    const hopeless = make({ connectTimeoutMs: 1000 });
    hopeless.reader.refusals = Infinity;
    const error = (await hopeless.run().catch((e: unknown) => e)) as UserError;
    expect(error.problem).toBe(
      'cannot reach MongoDB at mongodb://127.0.0.1:1/ (connect ECONNREFUSED 127.0.0.1:1)',
    );
    expect(hopeless.journal.of('load start', 'open')).toEqual([]);
  });

  test('gives up on a Redis that refuses connections at the connect timeout, naming its error', async () => {
    // ioredis's command on a refusing server fails only after its own retries (seconds): the
    // attempt is cut at the timeout, and the line names what the connection said.
    const t = make({ connectTimeoutMs: 200 });
    t.redis.ping = () => {
      t.redis.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:2'));
      return new Promise<never>(() => undefined);
    };
    const error = (await t.run().catch((e: unknown) => e)) as UserError;
    expect(error.problem).toMatch(
      /^cannot reach Redis at redis:\/\/127\.0\.0\.1:2 \(connect ECONNREFUSED 127\.0\.0\.1:2\)/,
    );
  });

  test('continues after the stored token, saving each position only after its jobs', async () => {
    const t = make();
    t.store.value = { kind: 'position', position: position(10) };
    t.reader.add(batch(11, ['a', 'b']), batch(12, []), batch(13, ['c']));
    const running = t.run();
    await until(() => t.reader.left === 0 && t.journal.of('save').length >= 3, 'three saves');
    await t.ingest.stop();
    await running;
    expect(t.journal.entries.slice(0, 4)).toEqual([
      'connect',
      'load start',
      'load watermarks stream',
      `open after ${token(10)._data}`,
    ]);
    // Jobs, then the position after them; a drained batch moves the position too.
    expect(t.journal.of('commit', 'save')).toEqual([
      'commit a,b',
      `save ${token(11)._data}`,
      `save ${token(12)._data}`,
      'commit c',
      `save ${token(13)._data}`,
    ]);
    expect(t.ingest.status.position?.token).toEqual(token(13));
    expect(t.committed).toEqual([2, 1]);
    expect(t.logged('resuming after the stored resume token')).toBe(true);
    expect(t.states).toContain('streaming');
  });

  test('where it starts without a token: START_AT, a stored start time, a snapshot copy', async () => {
    const at = make({ startAt: { kind: 'time', at: new Date(1_700_000_100_000) } });
    const running = at.run();
    await until(() => at.journal.of('open').length >= 1, 'the stream to open');
    expect(at.journal.of('open')).toEqual(['open at 1700000100']);
    await at.ingest.stop();
    await running;

    const marked = make({ startAt: { kind: 'snapshot' } });
    marked.store.marker(new Timestamp({ t: 1_700_000_200, i: 0 }));
    marked.reader.add(batch(20, ['x']));
    const markedRun = marked.run();
    await until(() => marked.journal.of('save').length >= 1, 'the first save');
    expect(marked.journal.of('open')).toEqual(['open at 1700000200']); // START_AT is ignored
    expect(marked.logged('a start time is stored')).toBe(true);
    await marked.ingest.stop();
    await markedRun;

    // START_AT=snapshot: the copy reads through the reader (its thread), commits on this side,
    // then the stream opens at the copy's start and the first stored position forgets the copy.
    const copy = make({ startAt: { kind: 'snapshot' }, batchSize: 2 });
    copy.reader.collections.set('db.c', 3);
    copy.reader.add(batch(30, ['y']));
    const copyRun = copy.run();
    await until(() => copy.journal.of('clear snapshot').length >= 1, 'the copy to be forgotten');
    expect(copy.journal.of('commit', 'open', 'save', 'clear snapshot')).toEqual([
      'commit snapshot db.c:0,db.c:1',
      'commit snapshot db.c:2',
      'open at 1700000500',
      'commit y',
      `save ${token(30)._data}`,
      'clear snapshot',
    ]);
    expect(copy.states.slice(0, 2)).toEqual(['snapshot', 'streaming']);
    await copy.ingest.stop();
    await copyRun;
  });

  test('backpressure: no read while a queue is over the limit, reading again once it is not', async () => {
    const t = make({ backlogLimit: 10 });
    t.enqueuer.waiting.set('alpha', 11);
    const paused: boolean[] = [];
    t.ingest.on('backpressure', (value) => paused.push(value));
    t.reader.add(batch(1, ['a']));
    const running = t.run();
    await until(() => paused.length >= 1, 'backpressure');
    const readsWhileFull = t.reader.reads;
    await until(() => t.enqueuer.waitingReads > 3, 'a few more counts');
    expect(t.reader.reads).toBe(readsWhileFull);
    expect(t.reader.reads).toBe(0);
    expect(t.ingest.status.state).toBe('backpressure');
    expect(t.clock.sleeps.every((ms) => ms === 500)).toBe(true);
    t.enqueuer.waiting.set('alpha', 3);
    await until(() => t.journal.of('save').length >= 1, 'the batch after the backlog drained');
    expect(paused).toEqual([true, false]);
    expect(t.logged('backlog limit reached')).toBe(true);
    expect(t.logged('backlog below the limit')).toBe(true);
    await t.ingest.stop();
    await running;
  });

  test('a transient MongoDB error: backoff, then the stream reopens after the last stored position', async () => {
    const t = make();
    t.reader.add(
      batch(1, ['a']),
      new ReadError('connection reset', { kind: 'transient' }),
      new ReadError('connection reset', { kind: 'transient' }),
      batch(2, ['b']),
    );
    const running = t.run();
    await until(() => t.journal.of('save').length >= 2, 'both batches');
    expect(t.journal.of('open', 'commit', 'save')).toEqual([
      'open now',
      'commit a',
      `save ${token(1)._data}`,
      `open after ${token(1)._data}`,
      `open after ${token(1)._data}`,
      'commit b',
      `save ${token(2)._data}`,
    ]);
    // Full-jitter backoff (random() is 0.5 here): half of 200 ms, then half of 400 ms.
    expect(t.clock.sleeps).toEqual([100, 200]);
    expect(t.journal.of('reset queues', 'load start')).toEqual(['load start']); // MongoDB's: no reload
    expect(t.states).toEqual(expect.arrayContaining(['retrying', 'streaming']));
    expect(t.ingest.status.lastError).toBeNull();
    expect(t.logged('MongoDB is unavailable; retrying with backoff')).toBe(true);
    expect(t.logged('recovered')).toBe(true);
    await t.ingest.stop();
    await running;
  });

  test('a Redis failure: the queues are set up again and the start read again before going on', async () => {
    const t = make();
    t.store.value = { kind: 'position', position: position(5) };
    t.enqueuer.failCommits.push(new ReplyError('LOADING Redis is loading the dataset in memory'));
    // Batch 7 is read ahead while batch 6 fails to commit, and dropped; the stream, reopened
    // after 5, reads 6 and 7 again.
    t.reader.add(batch(6, ['a']), batch(7, ['b']), batch(6, ['a']), batch(7, ['b']));
    const running = t.run();
    await until(() => t.journal.of('save').length >= 2, 'both batches');
    expect(t.journal.of('reset queues', 'load start', 'open', 'commit', 'save')).toEqual([
      'load start',
      `open after ${token(5)._data}`,
      'reset queues',
      'load start',
      `open after ${token(5)._data}`,
      'commit a',
      `save ${token(6)._data}`,
      'commit b',
      `save ${token(7)._data}`,
    ]);
    expect(t.logged('Redis is unavailable; retrying')).toBe(true);
    await t.ingest.stop();
    await running;
  });

  test('Redis lost the position under it: the loss is recorded, and every start refuses until an operator chooses', async () => {
    const t = make();
    t.store.value = { kind: 'position', position: position(5) };
    t.reader.add(batch(6, ['a']), batch(7, ['b']), () => {
      // Read ahead while batch 7 is committed: Redis restarts without its data meanwhile, and
      // the save of 7 finds the key gone.
      t.store.lose();
      return batch(8, ['c']);
    });
    const running = t.run();
    const error = await running.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UserError);
    const stop = error as UserError;
    expect(stop.problem).toMatch(
      /^Redis lost this ingest's position: the token key "p:ingest:test:token" held the resume token at .*token 8200000006…\), and on \S+ nothing/,
    );
    expect(stop.problem).toMatch(/nothing .*never restarts from "now" on its own/);
    expect(stop.fix).toMatch(/changeq token set --at 2023-11-14T22:13:26\.000Z.*changeq resync/);
    // The save of 7 runs beside batch 8's jobs (the pipeline stores a position beside the next
    // batch), so those were sent before the loss was known; nothing is written after it.
    expect(t.journal.of('mark lost', 'clear watermarks', 'commit', 'save')).toEqual([
      'commit a',
      `save ${token(6)._data}`,
      'commit b',
      'commit c',
      'mark lost',
      'clear watermarks stream',
    ]);
    expect(t.store.value?.kind).toBe('lost');

    // A supervisor restarts it: the same store (Redis) holds the record, and it refuses at once.
    const again = make();
    again.store.value = t.store.value;
    const refused = await again.run().then(
      () => null,
      (e: unknown) => e,
    );
    expect((refused as UserError).problem).toBe(stop.problem);
    expect(again.journal.of('open', 'commit')).toEqual([]);
  });

  test('a dropped Redis connection: the start is read and checked again before anything is written', async () => {
    const kept = make();
    kept.store.value = { kind: 'position', position: position(5) };
    kept.reader.add(
      batch(6, ['a']),
      batch(7, ['b']),
      () => {
        // Read ahead before batch 7 is committed: the connection drops meanwhile; Redis came
        // back with its data (AOF), so the position is still there.
        kept.redis.drop();
        return batch(8, ['c']);
      },
      batch(7, ['b']),
      batch(8, ['c']),
    );
    const keptRun = kept.run();
    await until(() => kept.journal.of('save').length >= 3, 'three batches');
    expect(kept.journal.of('load start', 'open', 'commit', 'save')).toEqual([
      'load start',
      `open after ${token(5)._data}`,
      'commit a',
      `save ${token(6)._data}`,
      'load start',
      `open after ${token(6)._data}`,
      'commit b',
      `save ${token(7)._data}`,
      'commit c',
      `save ${token(8)._data}`,
    ]);
    await kept.ingest.stop();
    await keptRun;

    const emptied = make();
    emptied.store.value = { kind: 'position', position: position(5) };
    emptied.reader.add(batch(6, ['a']), batch(7, ['b']), () => {
      emptied.redis.drop(); // Redis restarted without its data
      emptied.store.lose();
      return batch(8, ['c']);
    });
    const error = (await emptied.run().catch((e: unknown) => e)) as UserError;
    expect(error.problem).toMatch(/^Redis lost this ingest's position/);
    // Nothing was written over the emptied Redis but the record of the loss.
    expect(emptied.journal.of('commit', 'save', 'mark lost')).toEqual([
      'commit a',
      `save ${token(6)._data}`,
      'mark lost',
    ]);
  });

  test('an older position after a Redis failure is a loss too; a newer one is not', async () => {
    const older = make();
    older.store.value = { kind: 'position', position: position(5) };
    older.store.failSaves.push(() => {
      // Redis came back from an older copy of its data.
      older.store.value = { kind: 'position', position: position(4) };
      return new ReplyError('LOADING Redis is loading the dataset in memory');
    });
    older.reader.add(batch(6, ['a']));
    const error = (await older.run().catch((e: unknown) => e)) as UserError;
    expect(error.problem).toMatch(/, and on .* an older one: the resume token at .*8200000004/);
    expect(older.journal.of('mark lost')).toEqual(['mark lost']);

    const newer = make();
    newer.store.value = { kind: 'position', position: position(5) };
    newer.store.failSaves.push(() => {
      // Another writer moved it on (no loss): the ingest goes on from there.
      newer.store.value = { kind: 'position', position: position(6) };
      return new ReplyError('LOADING Redis is loading the dataset in memory');
    });
    newer.reader.add(batch(6, ['a']), batch(7, ['b']));
    const newerRun = newer.run();
    await until(() => newer.journal.of('save').length >= 1, 'the save after the reload');
    expect(newer.journal.of('mark lost', 'open', 'save')).toEqual([
      `open after ${token(5)._data}`,
      `open after ${token(6)._data}`,
      `save ${token(7)._data}`,
    ]);
    await newer.ingest.stop();
    await newerRun;
  });

  test('a lost resume point stops it, naming the position; --accept-gap continues from now instead', async () => {
    const lostHistory = () =>
      new ReadError('resume point gone', { kind: 'unresumable', code: 286 }, { code: 286 });
    const t = make();
    t.store.value = { kind: 'position', position: position(3) };
    t.reader.add(lostHistory());
    const error = (await t.run().catch((e: unknown) => e)) as UserError;
    expect(error).toBeInstanceOf(UserError);
    expect(error.problem).toMatch(
      /resume point \(2023-11-14T22:13:23\.000Z \(token 8200000003…\)\) is no longer in MongoDB's oplog \(ChangeStreamHistoryLost 286: resume point gone\)/,
    );
    expect(t.store.value?.kind).toBe('position'); // untouched

    const gap = make({ acceptGap: true });
    gap.store.value = { kind: 'position', position: position(3) };
    gap.reader.add(lostHistory(), batch(50, ['late']));
    const running = gap.run();
    await until(() => gap.journal.of('save').length >= 1, 'the event after the gap');
    expect(gap.journal.of('open', 'clear', 'commit', 'save')).toEqual([
      `open after ${token(3)._data}`,
      'clear',
      'open now',
      'commit late',
      `save ${token(50)._data}`,
    ]);
    expect(gap.logged('accepting a gap')).toBe(true);
    await gap.ingest.stop();
    await running;
  });

  test("readiness asks the reader, over the stream's own connection, and the Redis connection", async () => {
    const t = make();
    expect(await t.ingest.probe(100)).toEqual({ mongodb: null, redis: null });
    t.reader.pingAnswer = 'connection 4 to 127.0.0.1:27017 closed';
    t.redis.status = 'reconnecting';
    expect(await t.ingest.probe(100)).toEqual({
      mongodb: 'connection 4 to 127.0.0.1:27017 closed',
      redis: 'connection reconnecting',
    });
  });

  test('a defect is not retried: it stops with its own error', async () => {
    const t = make();
    const defect = new ReadError('x is undefined', null, { name: 'TypeError' });
    t.reader.add(defect);
    expect(await t.run().catch((e: unknown) => e)).toBe(defect);
    expect(t.clock.sleeps).toEqual([]);
  });
});

describe('standby ingests, on fakes', () => {
  /** A lease this test hands out: each acquire() takes the next fence, when `free`. */
  class FakeLeadership implements LeadershipPort {
    readonly view: LeadershipPort['view'] = {
      role: 'standby',
      fence: null,
      leader: null,
      standbys: [],
    };
    free = true;
    next = 1;
    lost: ((reason: string) => void) | null = null;
    readonly ended: boolean[] = [];
    async acquire(signal: AbortSignal): Promise<number | null> {
      while (!this.free && !signal.aborted) await new Promise((r) => setTimeout(r, 5));
      if (signal.aborted) return null;
      this.free = false;
      this.view.role = 'leader';
      return this.next++;
    }
    onLost(listener: ((reason: string) => void) | null): void {
      this.lost = listener;
    }
    async endTerm(release: boolean): Promise<void> {
      this.view.role = 'standby';
      this.ended.push(release);
    }
    async close(): Promise<void> {}
  }

  function makeLed() {
    const journal = new Journal();
    const reader = new FakeReader(journal);
    const store = new FakeStore(journal);
    const enqueuer = new FakeEnqueuer(journal);
    const lease = new FakeLeadership();
    const fences: (number | null)[] = [];
    const { log, lines } = capturingLogger();
    const ingest = new Ingest(
      settings(),
      {
        reader,
        redis: new FakeRedis(),
        store,
        enqueuer,
        clock: new FakeClock(),
        leadership: {
          lease,
          fence: async (fence) => {
            fences.push(fence);
            journal.add(`fence ${fence}`);
          },
        },
      },
      log,
    );
    const deposedLines = () => lines.filter((l) => String(l.msg).startsWith('deposed: '));
    return { ingest, journal, reader, store, enqueuer, lease, fences, deposedLines };
  }

  test('a refused (fenced) commit ends the term: nothing saved after it, logged once, a standby again', async () => {
    const t = makeLed();
    t.store.value = { kind: 'position', position: position(10) };
    t.reader.add(batch(11, ['a']), batch(12, ['b']));
    t.enqueuer.failCommits = [];
    const running = t.ingest.start();
    await until(() => t.journal.of('save').length >= 1, 'the first save');
    // Another ingest took over: the next commit is refused.
    t.enqueuer.failCommits.push(new FencedError('the commit to queue alpha', 1, '2'));
    t.reader.add(batch(13, ['c']));
    await until(() => t.deposedLines().length === 1, 'the deposed line');
    await until(() => t.ingest.status.state === 'standby', 'standby');
    expect(t.lease.ended).toEqual([false]); // not given back: the lease is not ours any more
    expect(t.fences).toEqual([1, null]); // fenced, then unfenced; another ingest leads now
    expect(t.journal.of('save').length).toBeLessThanOrEqual(2);
    expect(t.journal.entries.indexOf('fence 1')).toBeLessThan(
      t.journal.entries.indexOf('load start'),
    );
    await t.ingest.stop();
    await running;
    expect(t.deposedLines()).toHaveLength(1);
  });

  test('a lost lease ends the term; stopping gives the lease back', async () => {
    const t = makeLed();
    t.store.value = { kind: 'position', position: position(10) };
    t.reader.add(batch(11, ['a']));
    const running = t.ingest.start();
    await until(() => t.journal.of('save').length >= 1, 'the first save');
    t.lease.lost?.('the lease was not renewed within 6000 ms');
    await until(() => t.deposedLines().length === 1, 'the deposed line');
    expect(String(t.deposedLines()[0]!.reason)).toMatch(/not renewed/);
    t.lease.free = true; // nobody else took it: this process leads again (fence 2)
    await until(() => t.fences.includes(2), 'the second term');
    await t.ingest.stop();
    await running;
    expect(t.lease.ended).toEqual([false, true]);
  });
});
