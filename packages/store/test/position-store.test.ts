/**
 * The token key on a real Redis: saved only over what the ingest last read or wrote there, read
 * as one clear line whatever it holds, and a lost position recorded in its place.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { Timestamp } from 'mongodb';
import { UserError } from '@changeq/shared';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { PositionChangedError, PositionStore } from '../src/position-store.js';

let server: RunningRedis;
let redis: Redis;
let n = 0;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

const position = (data: string) => ({
  token: { _data: data },
  clusterTime: new Timestamp({ t: 1_700_000_000, i: 1 }),
  wallTime: null,
  savedAt: new Date('2026-01-02T03:04:05Z'),
});

const fresh = () => new PositionStore(redis, `ps${++n}`, 'default');

describe('PositionStore', () => {
  test('saves over what it read or wrote, and refuses when the key holds something else', async () => {
    const store = fresh();
    expect(await store.loadStart()).toBeNull();
    await store.save(position('8201'));
    await store.save(position('8202'));
    expect(await store.load()).toEqual(position('8202'));

    // Redis restarted without its data: the key is gone, and nothing is written over it.
    await redis.del(store.keys.token);
    await expect(store.save(position('8203'))).rejects.toBeInstanceOf(PositionChangedError);
    expect(await redis.exists(store.keys.token)).toBe(0);

    // Read as absent, then written by someone else before the save.
    expect(await store.loadStart()).toBeNull();
    await redis.set(store.keys.token, 'written by another process');
    await expect(store.save(position('8204'))).rejects.toBeInstanceOf(PositionChangedError);
    expect(await redis.get(store.keys.token)).toBe('written by another process');

    // Another value (another writer, or an older copy of Redis' data) in place of its own.
    await redis.del(store.keys.token);
    await store.loadStart();
    await store.save(position('8205'));
    await redis.set(store.keys.token, 'an older value');
    await expect(store.save(position('8206'))).rejects.toBeInstanceOf(PositionChangedError);
    await redis.del(store.keys.token);
    await redis.hset(store.keys.token, 'f', 'v');
    await expect(store.save(position('8207'))).rejects.toBeInstanceOf(PositionChangedError);
    expect(await redis.type(store.keys.token)).toBe('hash');
  });

  test('a key of the wrong type is one clear line, and is shown for what it is', async () => {
    const store = fresh();
    await redis.hset(store.keys.token, 'token', 'x');
    const error = (await store.loadStart().catch((e: unknown) => e)) as UserError;
    expect(error).toBeInstanceOf(UserError);
    expect(error.problem).toMatch(/"ps\d+:ingest:default:token" is corrupt \(it is a Redis hash/);
    expect(error.fix).toMatch(/changeq token show/);
    expect(await store.inspect()).toEqual({ type: 'hash', raw: null });
    await store.clear();
    expect(await store.inspect()).toEqual({ type: 'none', raw: null });
  });

  test('a lost position is recorded in place of whatever the key held', async () => {
    const store = fresh();
    await store.loadStart();
    await store.save(position('8201'));
    const record = {
      had: { kind: 'position' as const, position: position('8201') },
      found: null,
      detectedAt: new Date('2026-01-02T03:05:00Z'),
    };
    await store.markLost(record);
    expect(await store.loadStart()).toEqual({ kind: 'lost', record });
  });
});
