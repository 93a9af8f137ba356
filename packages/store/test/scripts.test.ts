/**
 * The scripts behind the Scripts gateway, on a real Redis: each file states its contract, is
 * sent in full once per connection and by its hash after that, and heals by itself when Redis
 * lost its scripts (outside MULTI; inside, see the Enqueuer's test in apps/ingest).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { Scripts, scriptNames } from '../src/scripts.js';

const LUA_DIR = new URL('../lua/', import.meta.url);

const calls = async (redis: Redis, command: string) =>
  Number(
    new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(await redis.info('commandstats'))?.[1] ?? 0,
  );

describe('the Lua scripts', () => {
  test('every file is <name>-<numkeys>.lua, opens with its KEYS, ARGV and reply, and uses exactly numkeys KEYS', () => {
    const files = readdirSync(LUA_DIR);
    expect(files.length).toBeGreaterThanOrEqual(8);
    for (const file of files) {
      const match = /^([A-Za-z]+)-(\d+)\.lua$/.exec(file);
      expect(match, file).not.toBeNull();
      const lua = readFileSync(new URL(file, LUA_DIR), 'utf8');
      const header = /^--\[\[([\s\S]*?)\]\]/.exec(lua)?.[1] ?? '';
      expect(header, file).toMatch(/Input:/);
      expect(header, file).toMatch(/KEYS\[1\]/);
      expect(header, file).toMatch(/ARGV\[1\]/);
      expect(header, file).toMatch(/Output:/);
      const code = lua.slice(lua.indexOf(']]') + 2);
      const used = new Set([...code.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1])));
      expect(Math.max(...used), file).toBe(Number(match![2]));
      expect(code, `${file} must not read KEYS beyond its count`).not.toMatch(/#KEYS/);
      expect(scriptNames().get(match![1]!)).toBe(Number(match![2]));
    }
  });

  test('ship with the package (its files list lua/ beside dist/)', () => {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(manifest.files).toEqual(expect.arrayContaining(['dist', 'lua']));
  });
});

describe('the Scripts gateway', () => {
  let server: RunningRedis;
  let inspector: Redis;
  let n = 0;

  beforeAll(async () => {
    server = await startRedis();
    inspector = new Redis(server.url);
  });
  afterAll(async () => {
    inspector?.disconnect();
    await server?.stop();
  });

  test('sends a script in full once per connection, then by its hash', async () => {
    const redis = new Redis(server.url);
    try {
      const scripts = Scripts.of(redis);
      expect(Scripts.of(redis)).toBe(scripts);
      const key = `lease${++n}`;
      const [evals, evalshas] = [await calls(inspector, 'eval'), await calls(inspector, 'evalsha')];
      for (let i = 0; i < 5; i++) await scripts.releaseLease(key, 'nobody');
      expect((await calls(inspector, 'eval')) - evals).toBe(1);
      expect((await calls(inspector, 'evalsha')) - evalshas).toBe(4);
    } finally {
      redis.disconnect();
    }
  });

  test('a script that Redis lost (SCRIPT FLUSH) is sent again by itself', async () => {
    const redis = new Redis(server.url);
    try {
      const scripts = Scripts.of(redis);
      const keys = { lease: `lease${++n}`, fence: `fence${n}` };
      const value = await scripts.acquireLease(keys, '{"owner":"a"}', 10_000);
      expect(value).toBe('{"fence":1,"owner":"a"}');
      await inspector.script('FLUSH');
      expect((await scripts.extendLease(keys, value!, 10_000)).renewed).toBe(true);
      expect(await scripts.acquireLease(keys, '{"owner":"b"}', 10_000)).toBeNull();
      expect(await scripts.releaseLease(keys.lease, value!)).toBe(true);
      expect(await inspector.exists(keys.lease)).toBe(0);
    } finally {
      redis.disconnect();
    }
  });

  test('the guarded watermark is set only when every job of the transaction is present', async () => {
    const redis = new Redis(server.url);
    try {
      const scripts = Scripts.of(redis);
      const prefix = `wm${++n}:q:`;
      await redis.hset(`${prefix}j1`, 'data', '{}');
      const tx = redis.multi();
      scripts.queueWatermark(tx, { watermark: `${prefix}wm`, jobPrefix: prefix }, '82AA', ['j1']);
      scripts.queueWatermark(tx, { watermark: `${prefix}wm2`, jobPrefix: prefix }, '82AB', [
        'j1',
        'j2',
      ]);
      expect(await tx.exec()).toEqual([
        [null, 1],
        [null, 0],
      ]);
      expect(await redis.get(`${prefix}wm`)).toBe('82AA');
      expect(await redis.exists(`${prefix}wm2`)).toBe(0);
    } finally {
      redis.disconnect();
    }
  });

  test('parks an event once per document line, and unblocks only an empty line under a re-run', async () => {
    const redis = new Redis(server.url);
    try {
      const scripts = Scripts.of(redis);
      const keys = { line: `line${++n}`, seq: `seq${n}`, blocked: `blocked${n}` };
      expect(await scripts.parkEvent(keys, 'a')).toBe(1);
      expect(await scripts.parkEvent(keys, 'b')).toBe(2);
      expect(await scripts.parkEvent(keys, 'a')).toBe(1);
      await redis.hset(keys.blocked, 'doc', JSON.stringify({ dead: 'x', state: 'retry' }));
      expect(await scripts.unblockDocument(keys, 'doc')).toBe(false);
      await redis.del(keys.line);
      await redis.hset(keys.blocked, 'doc', JSON.stringify({ dead: 'x', state: 'blocked' }));
      expect(await scripts.unblockDocument(keys, 'doc')).toBe(false);
      await redis.hset(keys.blocked, 'doc', JSON.stringify({ dead: 'x', state: 'discard' }));
      expect(await scripts.unblockDocument(keys, 'doc')).toBe(true);
      expect(await redis.hexists(keys.blocked, 'doc')).toBe(0);
    } finally {
      redis.disconnect();
    }
  });
});
