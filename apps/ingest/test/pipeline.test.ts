/** The way from the stream to Redis (pipeline.ts): read ahead, backpressure, commit, save. */
import { describe, expect, test } from 'vitest';
import { Pipeline } from '../src/pipeline.js';
import type { FaultPoint } from '../src/ports.js';
import {
  FakeClock,
  FakeEnqueuer,
  FakeReader,
  FakeStore,
  Journal,
  batch,
  capturingLogger,
  position,
  token,
} from './fakes.js';

function pipeline(backlogLimit = 1000) {
  const journal = new Journal();
  const reader = new FakeReader(journal);
  const enqueuer = new FakeEnqueuer(journal);
  const store = new FakeStore(journal);
  const paused: boolean[] = [];
  const clock = new FakeClock();
  const line = new Pipeline(
    {
      reader,
      enqueuer,
      store,
      clock,
      faults: (point: FaultPoint) => journal.add(point),
    },
    { batchSize: 100, backlogLimit },
    { backpressure: (value) => paused.push(value) },
    capturingLogger().log,
  );
  return { line, journal, reader, enqueuer, store, paused, clock };
}

const signal = new AbortController().signal;

describe('the pipeline', () => {
  test('reads the next batch while this one is committed, but not past an invalidate', async () => {
    const { line, reader } = pipeline();
    reader.add(batch(1, ['a']), batch(2, ['b']), batch(3, [], { invalidated: true }), batch(4, []));
    expect((await line.next(signal))!.token).toEqual(token(1));
    expect(reader.reads).toBe(2); // batch 2 is on its way
    expect((await line.next(signal))!.token).toEqual(token(2));
    expect((await line.next(signal))!.invalidated).toBe(true);
    expect(reader.reads).toBe(3); // nothing read after the invalidate: the stream is reopened
    line.discard();
  });

  test('commits the jobs, then saves the position between its crash points; a quiet batch at the same place saves nothing', async () => {
    const { line, journal } = pipeline();
    const first = await line.commit(batch(1, ['a', 'b']), null, true);
    expect(first).toMatchObject({ saved: true, added: 2, position: { token: token(1) } });
    expect(journal.entries).toEqual([
      'commit a,b',
      'before-token-save',
      `save ${token(1)._data}`,
      'after-token-save',
      'clear snapshot',
    ]);
    const quiet = await line.commit(batch(1, []), first.position, false);
    expect(quiet).toMatchObject({ saved: false, position: first.position });
    expect(journal.of('save')).toHaveLength(1);
    // The server's postBatchResumeToken moves a quiet stream's position on.
    expect(await line.commit(batch(2, []), first.position, false)).toMatchObject({ saved: true });
  });

  test("stores a position beside the next batch: its jobs do not wait for the save, its own save does", async () => {
    const { line, journal, store } = pipeline();
    let answer = () => undefined as void;
    store.saveGate = new Promise((resolve) => (answer = resolve));
    const first = await line.commit(batch(1, ['a']), null, false);
    let firstStored = false;
    void first.stored!.then(() => (firstStored = true));
    const second = line.commit(batch(2, ['b']), first.position, false);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(journal.of('commit', 'save')).toEqual(['commit a', 'commit b']);
    expect(firstStored).toBe(false);
    store.saveGate = null;
    answer();
    await (await second).stored;
    expect(firstStored).toBe(true);
    expect(journal.of('commit', 'save')).toEqual([
      'commit a',
      'commit b',
      `save ${token(1)._data}`,
      `save ${token(2)._data}`,
    ]);
  });

  test('a failed save fails the next commit and flush, until settle forgets it', async () => {
    const { line, store } = pipeline();
    store.failSaves.push(new Error('READONLY'));
    const first = await line.commit(batch(1, ['a']), null, false);
    await expect(first.stored).rejects.toThrow('READONLY');
    await expect(line.flush()).rejects.toThrow('READONLY');
    await expect(line.commit(batch(2, ['b']), first.position, false)).rejects.toThrow('READONLY');
    await line.settle();
    await line.flush();
    expect(await line.commit(batch(2, ['b']), first.position, false)).toMatchObject({ saved: true });
  });

  test('keeps its position through a batch without a token', async () => {
    const { line } = pipeline();
    const before = position(4);
    expect(await line.commit({ ...batch(5, []), token: null }, before, false)).toEqual({
      position: before,
      saved: false,
      stored: null,
      added: 0,
      skipped: 0,
    });
  });

  test('holds back while a queue is over the limit, and counts again only when it may have crossed', async () => {
    const { line, reader, enqueuer, paused } = pipeline(10);
    reader.add(batch(1, ['a']), batch(2, ['b']), batch(3, ['c']));
    await line.next(signal);
    const counted = enqueuer.waitingReads;
    await line.next(signal);
    expect(enqueuer.waitingReads).toBe(counted); // 0 waiting + 0 added since: cannot be over 10
    enqueuer.waiting.set('alpha', 11);
    await line.commit(
      batch(
        2,
        Array.from({ length: 11 }, (_, i) => `j${i}`),
      ),
      null,
      false,
    );
    const reads = reader.reads;
    const held = line.next(signal);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(paused).toEqual([true]);
    expect(reader.reads).toBe(reads);
    enqueuer.waiting.set('alpha', 2);
    expect((await held)!.token).toEqual(token(3));
    expect(paused).toEqual([true, false]);
    // Batch 3 was read ahead before the queue filled up; nothing was read while it was held
    // back, and the next read ahead starts now.
    expect(reader.reads).toBe(reads + 1);
  });

  test('reads an old count again beside the stream: the next batch does not wait for it', async () => {
    const { line, reader, enqueuer, clock } = pipeline(10);
    reader.add(batch(1, ['a']), batch(2, ['b']), batch(3, ['c']));
    await line.next(signal);
    expect(enqueuer.waitingReads).toBe(1);
    clock.at += 1001;
    let answer = () => undefined as void;
    enqueuer.countGate = new Promise((resolve) => (answer = resolve));
    expect((await line.next(signal))!.token).toEqual(token(2)); // the count has not answered
    expect(enqueuer.waitingReads).toBe(2);
    answer();
  });

  test('stops waiting when stopped', async () => {
    const { line, enqueuer } = pipeline(10);
    enqueuer.waiting.set('alpha', 50);
    const stop = new AbortController();
    const held = line.next(stop.signal);
    await new Promise((resolve) => setTimeout(resolve, 10));
    stop.abort();
    expect(await held).toBeNull();
  });
});
