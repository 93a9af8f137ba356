import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, test } from 'vitest';
import { isAlive } from '@changeq/processes';
import { startRedis, type RunningRedis } from '../src/index.js';

describe('startRedis', () => {
  const started: RunningRedis[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((redis) => redis.stop()));
  });

  test('runs with the settings BullMQ asks for, on a port of its own', async () => {
    const redis = await startRedis();
    started.push(redis);
    const client = new Redis(redis.url);
    try {
      expect(await client.ping()).toBe('PONG');
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await client.config('GET', 'maxmemory-policy')).toEqual([
        'maxmemory-policy',
        'noeviction',
      ]);
      expect(await client.config('GET', 'bind')).toEqual(['bind', '127.0.0.1']);
    } finally {
      client.disconnect();
    }
  });

  test('keeps acknowledged writes across kill -9 with appendfsync always', async () => {
    const redis = await startRedis({ appendfsync: 'always' });
    started.push(redis);
    const before = new Redis(redis.url);
    await before.set('answer', '42');
    before.disconnect();
    const oldPid = redis.pid;
    await redis.kill('SIGKILL');
    expect(isAlive(oldPid)).toBe(false);
    await redis.restart();
    expect(redis.pid).not.toBe(oldPid);
    const after = new Redis(redis.url);
    try {
      expect(await after.get('answer')).toBe('42');
    } finally {
      after.disconnect();
    }
  });

  test('stop() ends the process and removes its temporary folder', async () => {
    const redis = await startRedis();
    await redis.stop();
    expect(isAlive(redis.pid)).toBe(false);
    expect(existsSync(redis.dataDir)).toBe(false);
  });
});
