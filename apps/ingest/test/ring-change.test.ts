/** The ingest's ring changes on fakes: what is written, in which order, and when. */
import { describe, expect, it } from 'vitest';
import { RingChangedError, type StoredEpoch } from '@changeq/store';
import type { FaultPoint, RingPort } from '../src/ports.js';
import { RingKeeper, markerPosition } from '../src/ring-change.js';
import { FakeEnqueuer, FakeReader, Journal, capturingLogger, position, token } from './fakes.js';

/** The ring key in memory, with compare-and-set like RingStore. */
class FakeRing implements RingPort {
  readonly key = 'p:ring';
  stored: StoredEpoch[] | null = null;
  constructor(private readonly journal: Journal) {}
  async load() {
    return this.stored && this.stored.map((e) => ({ ...e }));
  }
  async save(epochs: readonly StoredEpoch[]) {
    const last = epochs[epochs.length - 1]!;
    if ((this.stored?.length ?? 0) >= epochs.length) throw new RingChangedError(this.key);
    this.journal.add(`ring ${last.epoch} ${last.names.join('+')} from ${last.from}`);
    this.stored = [...epochs];
  }
  async markHandoff(worker: string, epoch: number) {
    this.journal.add(`handoff done ${worker}@${epoch}`);
  }
}

function system(faults: (point: FaultPoint) => void = () => undefined) {
  const journal = new Journal();
  const ring = new FakeRing(journal);
  const enqueuer = new FakeEnqueuer(journal);
  const reader = new FakeReader(journal);
  const { log, lines } = capturingLogger();
  const keeper = new RingKeeper(
    { ring, enqueuer, reader, faults, now: () => Date.parse('2026-01-01T00:00:00Z') },
    log,
  );
  return { keeper, journal, ring, enqueuer, reader, lines };
}

describe('RingKeeper', () => {
  it('stores epoch 1 from workers.toml when no ring is stored, and routes by it', async () => {
    const { keeper, journal, reader } = system();
    await keeper.load(['a', 'b']);
    expect(journal.entries).toEqual(['ring 1 a+b from ']);
    expect(reader.rings).toEqual(['1:a+b@']);
    expect(keeper.ready(position(5))).toBe(false);
  });

  it('adds a name at a batch boundary: markers in the queues that lose documents, then the epoch', async () => {
    const { keeper, journal, enqueuer, reader, lines } = system();
    await keeper.load(['a', 'b']);
    enqueuer.unfinished.set('a', 3); // b is empty: its handoff is done at once
    keeper.request(['a', 'b', 'c'], 'SIGHUP');
    expect(lines.at(-1)).toMatchObject({ why: 'SIGHUP', added: ['c'], removed: [] });
    expect(keeper.ready(null)).toBe(false); // no stored position yet: deferred
    expect(keeper.ready(position(7))).toBe(true);
    await keeper.apply(position(7));
    const at = token(7)._data;
    expect(journal.entries.slice(1)).toEqual([
      'handoff done b@2',
      'commit handoff-2',
      `ring 2 a+b+c from ${at}`,
    ]);
    expect(reader.rings.at(-1)).toBe(`1:a+b@ 2:a+b+c@${at}`);
    expect(lines.at(-1)).toMatchObject({
      epoch: 2,
      added: ['c'],
      handoffs: ['a', 'b'],
      markers: ['a'],
    });
    expect(keeper.ready(position(8))).toBe(false); // nothing more to change
  });

  it('a removal hands off only the removed name; the marker sorts right after the position', async () => {
    const { keeper, journal, enqueuer } = system();
    await keeper.load(['a', 'b', 'c']);
    enqueuer.unfinished.set('b', 1);
    keeper.request(['a', 'c'], 'file watch');
    await keeper.apply(position(9));
    expect(journal.of('commit', 'handoff')).toEqual(['commit handoff-2']);
    const at = token(9)._data;
    expect(markerPosition(at) > at).toBe(true);
    expect(markerPosition(at) < `${at}0`).toBe(true);
    expect(markerPosition(at) < token(10)._data).toBe(true);
  });

  it('a start with a changed file asks for the change; the same names again withdraw it', async () => {
    const { keeper, ring, lines } = system();
    ring.stored = [{ epoch: 1, names: ['a'], from: '', at: 'then' }];
    await keeper.load(['a', 'b']);
    expect(lines.at(-1)).toMatchObject({ why: 'workers.toml at start', added: ['b'] });
    expect(keeper.ready(position(3))).toBe(true);
    keeper.request(['a'], 'file watch');
    expect(keeper.ready(position(3))).toBe(false);
  });

  it("waits for a position after the current epoch's switch before a second change", async () => {
    const { keeper } = system();
    await keeper.load(['a']);
    keeper.request(['a', 'b'], 'SIGHUP');
    await keeper.apply(position(4));
    keeper.request(['a', 'b', 'c'], 'SIGHUP');
    expect(keeper.ready(position(4))).toBe(false);
    expect(keeper.ready(position(5))).toBe(true);
  });

  it('a crash between the markers and the record leaves the old ring: the change is made again', async () => {
    const crash = new Error('SIGKILL');
    const first = system((point) => {
      if (point === 'ring-after-markers') throw crash;
    });
    await first.keeper.load(['a']);
    first.enqueuer.unfinished.set('a', 1);
    first.keeper.request(['a', 'b'], 'SIGHUP');
    await expect(first.keeper.apply(position(4))).rejects.toBe(crash);
    expect(first.ring.stored?.length).toBe(1);
    // The restarted ingest reads the old ring and the changed file: the same change again.
    const { keeper: again, ring, journal } = system();
    ring.stored = first.ring.stored;
    await again.load(['a', 'b']);
    expect(again.ready(position(4))).toBe(true);
    await again.apply(position(4));
    expect(journal.of('ring')).toEqual([`ring 2 a+b from ${token(4)._data}`]);
  });

  it('a start with a changed file after a crash between a commit and its token save waits until the stream has passed every queued job', async () => {
    const { keeper, enqueuer, journal } = system();
    await keeper.load(['a']);
    keeper.request(['a', 'b'], 'workers.toml at start');
    // Jobs up to position 6 are in the queues, the token was saved at 4: the events 5 and 6 were
    // routed by the old names, and routing them again by the new ones would enqueue them twice.
    enqueuer.highest = token(6)._data;
    expect(keeper.ready(position(4))).toBe(false);
    expect(keeper.ready(position(5))).toBe(false);
    expect(keeper.ready(position(6))).toBe(true);
    await keeper.apply(position(6));
    expect(journal.of('ring')).toEqual(['ring 1 a from ', `ring 2 a+b from ${token(6)._data}`]);
  });
});
