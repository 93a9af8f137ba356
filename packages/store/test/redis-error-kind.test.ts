/**
 * redisErrorKind against the errors real calls raise: ioredis' classes must be the ones it
 * throws (one copy of redis-errors), and BullMQ's refusals carry their ErrorCode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { freePort } from '@changeq/processes';
import { redisErrorKind } from '../src/redis-error-kind.js';

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

describe('redisErrorKind', () => {
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

  it('a refusal by Redis is a reply (OOM, WRONGTYPE, a failed script)', async () => {
    await redis.hset('a-hash', 'f', 'v');
    expect(redisErrorKind(await failure(redis.get('a-hash')))).toBe('reply');
    expect(
      redisErrorKind(await failure(redis.eval("return redis.call('GET', KEYS[1])", 1, 'a-hash'))),
    ).toBe('reply');
    await redis.config('SET', 'maxmemory', '1');
    try {
      expect(redisErrorKind(await failure(redis.set('k', 'v')))).toBe('reply');
    } finally {
      await redis.config('SET', 'maxmemory', '0');
    }
  });

  it('a connection that gives up under a call is a connection failure', async () => {
    const nowhere = new Redis({
      port: await freePort(),
      maxRetriesPerRequest: 0,
      lazyConnect: true,
    });
    nowhere.on('error', () => undefined);
    try {
      expect(redisErrorKind(await failure(nowhere.get('k')))).toBe('connection');
    } finally {
      nowhere.disconnect();
    }
  });

  it("BullMQ's refusal to finish a job it does not own carries its ErrorCode", async () => {
    const queue = new Queue('kinds', { connection: redis, prefix: 'changeq' });
    const worker = new Worker('kinds', null, {
      connection: redis,
      prefix: 'changeq',
      autorun: false,
    });
    try {
      await queue.add('e', {}, { jobId: 'j1' });
      const job = (await worker.getNextJob('mine', { block: false }))!;
      expect(redisErrorKind(await failure(job.moveToCompleted('x', 'not-mine', false)))).toBe(
        'bullmq',
      );
    } finally {
      await worker.close(true);
      await queue.close();
    }
  });

  it('anything else is other', () => {
    expect(redisErrorKind(new Error('Connection is closed.'))).toBe('other');
    expect(redisErrorKind('a string')).toBe('other');
    expect(redisErrorKind(undefined)).toBe('other');
  });
});
