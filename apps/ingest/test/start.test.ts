/** Deciding where the stream starts (start.ts), on a fake store and a fake snapshot copy. */
import { Timestamp } from 'mongodb';
import { describe, expect, test } from 'vitest';
import { UserError } from '@changeq/shared';
import type { StartAt } from '@changeq/source';
import type { StoredStart } from '@changeq/store';
import { StartPlanner, lostSince, openOptions } from '../src/start.js';
import { FakeEnqueuer, FakeStore, Journal, capturingLogger, position, token } from './fakes.js';

function planner(startAt: StartAt, snapshot: () => Promise<Timestamp | null> = async () => null) {
  const journal = new Journal();
  const store = new FakeStore(journal);
  const { log, lines } = capturingLogger();
  const starts = new StartPlanner(
    { store, watermarks: new FakeEnqueuer(journal), snapshot, now: () => 1_800_000_000_000 },
    startAt,
    log,
  );
  return { starts, store, journal, lines };
}

const at = (t: number) => new Timestamp({ t, i: 0 });
const pos = (n: number): StoredStart => ({ kind: 'position', position: position(n) });
const marker = (t: number): StoredStart => ({
  kind: 'marker',
  marker: { startAt: at(t), savedAt: new Date(0), reason: 'test' },
});

describe('where the stream starts', () => {
  test('after a stored token, whatever START_AT says', async () => {
    const { starts, store, lines } = planner({ kind: 'snapshot' });
    store.value = pos(7);
    const plan = (await starts.plan())!;
    expect(openOptions(plan)).toEqual({ startAfter: token(7) });
    expect(plan.held).toEqual(pos(7));
    expect(lines.map((l) => l.msg)).toEqual([
      'a resume token is stored: START_AT is ignored (changeq token reset forces a new start)',
      'resuming after the stored resume token',
    ]);
  });

  test('at a stored start time (token set --at, resync)', async () => {
    const { starts, store } = planner({ kind: 'now' });
    store.value = marker(1_700_000_000);
    const plan = (await starts.plan())!;
    expect(openOptions(plan)).toEqual({ startAtOperationTime: at(1_700_000_000) });
    expect(plan.since).toMatch(/^start time 2023-11-14T22:13:20\.000Z/);
  });

  test('without either: now, a time, or after a snapshot copy (null when it was stopped)', async () => {
    expect(openOptions((await planner({ kind: 'now' }).starts.plan())!)).toEqual({});
    const time = planner({ kind: 'time', at: new Date(1_700_000_000_900) });
    expect(openOptions((await time.starts.plan())!)).toEqual({
      startAtOperationTime: at(1_700_000_000),
    });
    const copied = planner({ kind: 'snapshot' }, async () => at(1_700_000_123));
    const plan = (await copied.starts.plan())!;
    expect(openOptions(plan)).toEqual({ startAtOperationTime: at(1_700_000_123) });
    expect(plan.snapshotToClear).toBe(true);
    expect(await planner({ kind: 'snapshot' }).starts.plan()).toBeNull();
  });

  test('a position may only have moved on since the ingest held it', () => {
    expect(lostSince(null, null)).toBeNull(); // nothing held, nothing found: a first start
    expect(lostSince(null, pos(3))).toBeNull();
    expect(lostSince(pos(5), pos(5))).toBeNull();
    expect(lostSince(pos(5), pos(6))).toBeNull();
    expect(lostSince(pos(5), null)).toEqual(pos(5)); // gone
    expect(lostSince(pos(5), pos(4))).toEqual(pos(5)); // older
    expect(lostSince(marker(10), null)).toEqual(marker(10));
    expect(lostSince(marker(10), pos(4))).toBeNull(); // the first save after a start time
  });

  test('a loss is recorded before the stop, and a recorded loss refuses every start', async () => {
    const { starts, store, journal } = planner({ kind: 'now' });
    const error = (await starts.plan(pos(5)).catch((e: unknown) => e)) as UserError;
    expect(error).toBeInstanceOf(UserError);
    expect(journal.of('mark lost', 'clear watermarks', 'load watermarks')).toEqual([
      'mark lost',
      'clear watermarks stream',
    ]);
    expect(store.value).toMatchObject({
      kind: 'lost',
      record: { had: pos(5), found: null, detectedAt: new Date(1_800_000_000_000) },
    });
    // A restart into that Redis (nothing held: it looks like a first start) refuses all the same.
    const again = (await starts.plan().catch((e: unknown) => e)) as UserError;
    expect(again.problem).toBe(error.problem);
    expect(again.fix).toMatch(
      /^choose how to go on: `changeq token set --at 2023-11-14T22:13:25\.000Z`/,
    );
  });
});
