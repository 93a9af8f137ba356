import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { encodePause, type PauseReport } from '../src/codecs/pause.js';
import { pauseKeys, type PauseTarget } from '../src/keys.js';
import { PauseWatch, readPause, requestPause } from '../src/pause.js';

describe('pause flags', () => {
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
  const worker: PauseTarget = { kind: 'worker', name: 'alpha' };

  it('keys an ingest by its id and a worker by its name, beside their other keys', () => {
    expect(pauseKeys('cq', { kind: 'ingest', id: 'main' })).toEqual({
      pause: 'cq:ingest:main:pause',
      pauseState: 'cq:ingest:main:pause-state',
    });
    expect(pauseKeys('cq', worker).pause).toBe('cq:worker:alpha:pause');
  });

  it('a request is seen by the watch (within its poll interval), answered, and cleared by resume', async () => {
    let now = 0;
    const watch = new PauseWatch(redis, 'p1', worker, 500, () => now);
    expect(await watch.request()).toBeNull();
    const request = await requestPause(redis, 'p1', worker, true);
    // Read at most once per poll interval: the cached "no pause" holds until it is 500 ms old.
    expect(await watch.request()).toBeNull();
    now = 500;
    expect((await watch.request())?.id).toBe(request?.id);
    await watch.report('paused', request, 0);
    const read = await readPause(redis, 'p1', worker);
    expect(read.request?.id).toBe(request?.id);
    expect(read.report).toMatchObject({ state: 'paused', request: request?.id, pid: process.pid });
    expect(await redis.pttl(pauseKeys('p1', worker).pauseState)).toBeGreaterThan(0);
    expect(await requestPause(redis, 'p1', worker, false)).toBeNull();
    expect((await readPause(redis, 'p1', worker)).request).toBeNull();
  });

  it("clear removes this process's report only, not a successor's", async () => {
    const watch = new PauseWatch(redis, 'p2', worker, 500);
    await watch.report('running', null);
    await watch.clear();
    expect((await readPause(redis, 'p2', worker)).report).toBeNull();
    await watch.report('running', null);
    const successor: PauseReport = {
      state: 'running',
      request: null,
      since: '',
      pid: process.pid + 1,
      host: 'x',
    };
    await redis.set(pauseKeys('p2', worker).pauseState, encodePause(successor));
    await watch.clear();
    expect((await readPause(redis, 'p2', worker)).report?.pid).toBe(process.pid + 1);
  });
});
