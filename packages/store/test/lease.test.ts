import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { Lease, type LeaseDataLoss } from '../src/lease.js';

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

  const lease = (key: string, ttlMs: number, lost: string[] = [], losses: LeaseDataLoss[] = []) =>
    new Lease({
      redis,
      key: `${key}:lease`,
      fenceKey: `${key}:fence`,
      labels: { worker: 'alpha' },
      ttlMs,
      onLost: (reason) => lost.push(reason),
      onDataLost: (loss) => losses.push(loss),
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

  it('is taken over at once from a holder of this host whose process is gone, not from a live one or another host', async () => {
    const key = `l${++n}`;
    // A real process of this host that held the lease and died (kill -9): its pid is free now.
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    const livePid = child.pid!;
    const holder = (pid: number, host: string, fence: number) =>
      JSON.stringify({ fence, owner: `dead-${pid}`, pid, host, startedAt: new Date().toISOString() });
    const taken: number[] = [];
    const mine = new Lease({
      redis,
      key: `${key}:lease`,
      fenceKey: `${key}:fence`,
      ttlMs: 60_000,
      onLost: () => undefined,
      onDeadHolder: (dead) => taken.push(dead.pid),
    });
    await redis.set(`${key}:fence`, '7');
    try {
      // Alive on this host, or on another host (whose pids mean nothing here): wait for the TTL.
      await redis.set(`${key}:lease`, holder(livePid, hostname(), 7), 'PX', 60_000);
      expect(await mine.tryAcquire()).toBe(false);
      child.kill('SIGKILL');
      await once(child, 'exit');
      await redis.set(`${key}:lease`, holder(livePid, `not-${hostname()}`, 7), 'PX', 60_000);
      expect(await mine.tryAcquire()).toBe(false);
      // Gone, on this host: taken over now, with the next fence.
      await redis.set(`${key}:lease`, holder(livePid, hostname(), 7), 'PX', 60_000);
      expect(await mine.tryAcquire()).toBe(true);
      expect(mine.fence).toBe(8);
      expect(taken).toEqual([livePid]);
      expect((await mine.currentHolder())?.owner).toBe(mine.owner);
    } finally {
      child.kill('SIGKILL');
      await mine.release();
    }
  });

  it('passes to a standby when the holder stops renewing (a crash)', async () => {
    const key = `l${++n}`;
    const a = lease(key, 300);
    const b = lease(key, 300);
    expect(await a.tryAcquire()).toBe(true);
    a.abandon();
    const started = Date.now();
    // The standby never acquired: tryAcquire() stays false.
    await vi.waitFor(async () => expect(await b.tryAcquire()).toBe(true), {
      timeout: 2_000,
      interval: 100,
    });
    expect(Date.now() - started).toBeGreaterThan(150);
    await b.release();
  });

  it('tells the holder at once when another process holds the lease now', async () => {
    const key = `l${++n}`;
    const lost: string[] = [];
    const a = lease(key, 500, lost);
    expect(await a.tryAcquire()).toBe(true);
    await redis.set(`${key}:lease`, 'someone else', 'PX', 5_000);
    await vi.waitFor(() => expect(lost, 'onLost not called').not.toHaveLength(0), {
      timeout: 2_000,
      interval: 100,
    });
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
      await vi.waitFor(() => expect(lost, 'onLost not called').not.toHaveLength(0), {
        timeout: 2_000,
        interval: 100,
      });
      expect(a.isValid()).toBe(false);
      expect(lost[0]).toMatch(/not renewed within 240 ms/);
    } finally {
      process.kill(server.pid, 'SIGCONT');
    }
  });

  it('tells the holder when Redis lost its data (the fencing counter went back), once per loss', async () => {
    const key = `l${++n}`;
    const lost: string[] = [];
    const losses: LeaseDataLoss[] = [];
    const a = lease(key, 500, lost, losses);
    expect(await a.tryAcquire()).toBe(true);
    await a.release();
    expect(await a.tryAcquire()).toBe(true);
    expect(a.fence).toBe(2);
    // What a Redis restarted empty holds for these keys: nothing.
    await redis.del(`${key}:lease`, `${key}:fence`);
    await vi.waitFor(() => expect(lost, 'onLost not called').not.toHaveLength(0), {
      timeout: 2_000,
      interval: 50,
    });
    expect(losses).toEqual([{ heldFence: 2, counter: 0 }]);
    expect(lost).toEqual([
      'Redis lost the lease: its fencing counter is at 0, below the fence 2 this process held',
    ]);
    expect(a.isValid()).toBe(false);
    // Taking it again afterwards is no second loss.
    expect(await a.tryAcquire()).toBe(true);
    expect(a.fence).toBe(1);
    expect(losses).toHaveLength(1);
    // A loss found by the acquisition (the lease had lapsed meanwhile, nothing renewed it).
    a.abandon();
    await redis.del(`${key}:lease`, `${key}:fence`);
    expect(await a.tryAcquire()).toBe(true);
    expect(losses).toEqual([
      { heldFence: 2, counter: 0 },
      { heldFence: 1, counter: 0 },
    ]);
    await a.release();
  });
});
