import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { Lease } from '../src/lease.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '@changeq/testkit';

describe('Lease', () => {
  let server: RunningRedis;
  let redis: Redis;
  let n = 0;
  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });

  const lease = (key: string, ttlMs: number, lost: string[] = []) =>
    new Lease({
      redis,
      key: `${key}:lease`,
      fenceKey: `${key}:fence`,
      worker: 'alpha',
      ttlMs,
      onLost: (reason) => lost.push(reason),
    });

  it('is held by one process at a time, renewed while held, with a growing fence', async () => {
    const key = `l${++n}`;
    const a = lease(key, 300);
    const b = lease(key, 300);
    expect(await a.tryAcquire()).toBe(true);
    expect(await b.tryAcquire()).toBe(false);
    await sleep(700); // more than twice the TTL: only renewal keeps it
    expect(a.isValid()).toBe(true);
    expect(await b.tryAcquire()).toBe(false);
    expect((await b.currentHolder())?.owner).toBe(a.owner);
    await a.release();
    expect(await b.tryAcquire()).toBe(true);
    expect(b.fence).toBe(a.fence + 1);
    await b.release();
  });

  it('passes to a standby when the holder stops renewing (a crash)', async () => {
    const key = `l${++n}`;
    const a = lease(key, 300);
    const b = lease(key, 300);
    expect(await a.tryAcquire()).toBe(true);
    a.abandon();
    const started = Date.now();
    await waitFor(
      () => b.tryAcquire(),
      () => 'standby never acquired',
      2_000,
    );
    expect(Date.now() - started).toBeGreaterThan(150);
    await b.release();
  });

  it('tells the holder at once when another process holds the lease now', async () => {
    const key = `l${++n}`;
    const lost: string[] = [];
    const a = lease(key, 500, lost);
    expect(await a.tryAcquire()).toBe(true);
    await redis.set(`${key}:lease`, 'someone else', 'PX', 5_000);
    await waitFor(
      async () => lost.length > 0,
      () => 'onLost not called',
      2_000,
    );
    expect(lost).toEqual(['another process holds the lease now']);
    expect(a.isValid()).toBe(false);
  });

  it('stops being valid on its own clock when renewals do not get through', async () => {
    const key = `l${++n}`;
    const lost: string[] = [];
    const a = lease(key, 400, lost);
    expect(await a.tryAcquire()).toBe(true);
    process.kill(server.pid, 'SIGSTOP'); // Redis frozen: renewals hang
    try {
      await waitFor(
        async () => lost.length > 0,
        () => 'onLost not called',
        2_000,
      );
      expect(a.isValid()).toBe(false);
      expect(lost[0]).toMatch(/not renewed within 240 ms/);
    } finally {
      process.kill(server.pid, 'SIGCONT');
    }
  });
});
