/**
 * What a Redis error means, told by ioredis' classes and Redis' reply prefixes: each error here
 * is one a real Redis and a real ioredis connection produce.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { freePort } from '@changeq/processes';
import redisErrors from 'redis-errors';
import { classifyRedisError } from '../src/redis-errors.js';

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

const failure = <T>(promise: Promise<T>) =>
  promise.then(
    () => null,
    (error: unknown) => error,
  );

describe('classifyRedisError', () => {
  test("a refusal Redis would repeat is named by its reply's prefix", async () => {
    const key = `hash${++n}`;
    await redis.hset(key, 'f', 'v');
    const wrongType = await failure(redis.get(key));
    expect(classifyRedisError(wrongType, redis)).toEqual({ kind: 'refused', reply: 'WRONGTYPE' });
    const unknown = await failure(redis.call('NOSUCHCOMMAND'));
    expect(classifyRedisError(unknown, redis)).toEqual({ kind: 'refused', reply: 'ERR' });
  });

  test('lost scripts are worth a retry; a full Redis is told apart, inside a transaction too', async () => {
    const noScript = await failure(redis.evalsha('0'.repeat(40), 0));
    expect(classifyRedisError(noScript, redis)).toEqual({ kind: 'unavailable' });

    const admin = new Redis(server.url);
    try {
      await admin.config('SET', 'maxmemory', '1');
      const oom = await failure(redis.set(`k${++n}`, 'v'));
      expect(classifyRedisError(oom, redis)).toEqual({ kind: 'full' });
      // Refused while queued: EXEC answers EXECABORT, and ioredis hands on the reason.
      const tx = await failure(redis.multi().set(`k${++n}`, 'v').exec());
      expect((tx as Error).message).toMatch(/^EXECABORT/);
      expect(classifyRedisError(tx, redis)).toEqual({ kind: 'full' });
    } finally {
      await admin.config('SET', 'maxmemory', '0');
      admin.disconnect();
    }
  });

  test('a connection that is down: refused sockets, aborted commands, spent retries, a closed connection', async () => {
    const port = await freePort();
    const nowhere = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0 });
    const socketErrors: unknown[] = [];
    nowhere.on('error', (error) => socketErrors.push(error));
    try {
      const spent = await failure(nowhere.ping());
      expect((spent as Error).name).toBe('MaxRetriesPerRequestError');
      expect(classifyRedisError(spent, nowhere)).toEqual({ kind: 'unavailable' });
      expect(socketErrors.length).toBeGreaterThan(0);
      expect((socketErrors[0] as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
      expect(classifyRedisError(socketErrors[0], nowhere)).toEqual({ kind: 'unavailable' });
    } finally {
      nowhere.disconnect();
    }

    const dropped = new Redis(server.url, { maxRetriesPerRequest: 1 });
    try {
      await dropped.ping();
      dropped.disconnect(false);
      // ioredis fails a closed connection's commands with a plain Error: Redis' while not ready.
      const closed = await failure(dropped.ping());
      expect((closed as Error).constructor).toBe(Error);
      expect(classifyRedisError(closed, dropped)).toEqual({ kind: 'unavailable' });
      expect(classifyRedisError(closed, { status: 'ready' })).toBeNull();
      // Seen once the connection is back: Redis' all the same when it dropped meanwhile.
      expect(classifyRedisError(closed, { status: 'ready', dropped: true })).toEqual({
        kind: 'unavailable',
      });
    } finally {
      dropped.disconnect();
    }
  });

  test('commands ioredis aborts (the fragments of a transaction cut off by a lost connection) are its AbortError', () => {
    // ioredis raises this one only when a close lands inside a transaction: made here with the
    // class ioredis makes it with.
    const aborted = new redisErrors.AbortError('Command aborted due to connection close');
    expect(classifyRedisError(aborted, { status: 'reconnecting' })).toEqual({
      kind: 'unavailable',
    });
  });

  test('anything else is not Redis’', () => {
    expect(classifyRedisError(new TypeError('x is undefined'), { status: 'end' })).toBeNull();
    expect(classifyRedisError('a string', { status: 'end' })).toBeNull();
  });
});
