import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { decodeRing } from '../src/codecs/ring.js';
import { RingChangedError, RingStore, nextEpoch } from '../src/ring-store.js';

describe('RingStore', () => {
  let server: RunningRedis;
  let redis: Redis;
  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });
  const now = new Date('2026-01-01T00:00:00Z');

  it('stores epochs with compare-and-set: a second writer that read the old ring is refused', async () => {
    const a = new RingStore(redis, 'r1');
    const b = new RingStore(redis, 'r1');
    expect(await a.load()).toBeNull();
    expect(await b.load()).toBeNull();
    const first = nextEpoch([], ['x', 'y'], 'ignored', now);
    expect(first).toEqual([{ epoch: 1, names: ['x', 'y'], from: '', at: now.toISOString() }]);
    await a.save(first);
    await expect(b.save(first)).rejects.toBeInstanceOf(RingChangedError);
    const second = nextEpoch(first, ['x', 'y', 'z'], '82AB', now);
    await a.save(second);
    expect((await b.load())?.map((e) => [e.epoch, e.from])).toEqual([
      [1, ''],
      [2, '82AB'],
    ]);
  });

  it('keeps the last five epochs and refuses a value that is not a ring in one line', async () => {
    let epochs = nextEpoch([], ['a'], '', now);
    for (let i = 2; i <= 8; i++) epochs = nextEpoch(epochs, ['a', `n${i}`], `82${i}`, now);
    const store = new RingStore(redis, 'r2');
    await store.save(epochs);
    expect((await store.load())?.map((e) => e.epoch)).toEqual([4, 5, 6, 7, 8]);
    await redis.set('r3:ring', '{"v":1}');
    await expect(new RingStore(redis, 'r3').load()).rejects.toThrow(
      /^the ring key "r3:ring" does not hold a changeq ring/,
    );
    expect(() => decodeRing('nope', 'k')).toThrow(/delete it only with every process stopped/);
  });

  it('records handoffs per worker and epoch, read back in one round trip', async () => {
    const store = new RingStore(redis, 'r4');
    await store.markHandoff('a', 2);
    expect(
      await store.handoffsDone([
        { worker: 'a', epoch: 2 },
        { worker: 'a', epoch: 3 },
        { worker: 'b', epoch: 2 },
      ]),
    ).toEqual([true, false, false]);
    expect(await redis.ttl('r4:worker:a:handoff:2')).toBeGreaterThan(24 * 3600);
    expect(await store.handoffsDone([])).toEqual([]);
  });
});
