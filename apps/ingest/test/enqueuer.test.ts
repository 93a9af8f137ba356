/**
 * The enqueuer's transaction on a real Redis: a queue's jobs and its watermark in one MULTI, and
 * the watermark set only when every job of the transaction is in Redis. EXEC does not roll back
 * when one command fails; without the guard, a failed add would sit below the watermark and the
 * retry would skip it: a lost event.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger } from '@changeq/shared';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { Enqueuer, classifyRedisError, type PlannedJob } from '@changeq/store';

describe('Enqueuer', () => {
  let redis: RunningRedis;
  let connection: Redis;
  let inspector: Redis;
  let prefixes = 0;

  beforeAll(async () => {
    redis = await startRedis();
    connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    inspector = new Redis(redis.url);
  });

  afterAll(async () => {
    connection?.disconnect();
    inspector?.disconnect();
    await redis?.stop();
  });

  const job = (n: number): PlannedJob => ({
    queue: 'alpha',
    name: 'insert shop.orders',
    jobId: `job-${n}`,
    json: JSON.stringify({ n }),
    position: `82${String(n).padStart(12, '0')}`,
  });

  const setup = (chunkSize?: number) => {
    const prefix = `enq${++prefixes}`;
    const enqueuer = new Enqueuer({
      ...(chunkSize === undefined ? {} : { chunkSize }),
      redis: connection,
      prefix,
      queueNames: ['alpha'],
      watermarkKey: (queue, kind) => `${prefix}:watermark:${queue}:${kind}`,
      jobOptions: {},
      log: createLogger({ name: 'test', level: 'silent' }),
    });
    const waiting = async () => (await inspector.lrange(`${prefix}:alpha:wait`, 0, -1)).reverse(); // LPUSHed: oldest last
    const watermark = () => inspector.get(`${prefix}:watermark:alpha:stream`);
    return { enqueuer, waiting, watermark };
  };

  test('a batch committed twice is added once (the watermark skips the replay)', async () => {
    const { enqueuer, waiting, watermark } = setup();
    expect(await enqueuer.commit([job(1), job(2)], 'stream')).toEqual({ added: 2, skipped: 0 });
    expect(await enqueuer.commit([job(1), job(2), job(3)], 'stream')).toEqual({
      added: 1,
      skipped: 2,
    });
    expect(await waiting()).toEqual(['job-1', 'job-2', 'job-3']);
    expect(await watermark()).toBe(job(3).position);
    await enqueuer.close();
  });

  test("a queue's jobs go in transactions of chunkSize, one after another, in order", async () => {
    const { enqueuer, waiting, watermark } = setup(100);
    const jobs = Array.from({ length: 250 }, (_, i) => job(i + 1));
    const before = Number(
      (await inspector.info('commandstats')).match(/cmdstat_exec:calls=(\d+)/)?.[1] ?? 0,
    );
    expect(await enqueuer.commit(jobs, 'stream')).toEqual({ added: 250, skipped: 0 });
    const after = Number(
      (await inspector.info('commandstats')).match(/cmdstat_exec:calls=(\d+)/)?.[1] ?? 0,
    );
    expect(after - before).toBe(3);
    expect(await waiting()).toEqual(jobs.map((j) => j.jobId));
    expect(await watermark()).toBe(job(250).position);
    await enqueuer.close();
  });

  test('two jobs of one position (a routing key change: its marker and its event) share a transaction', async () => {
    // chunkSize 1 would split them; a crash between the two transactions would then leave a
    // watermark at their position, and the re-read would skip the second: the event, lost.
    const { enqueuer, waiting, watermark } = setup(1);
    const marker = { ...job(2), jobId: 'handoff-key-2', name: 'handoff' };
    const before = Number(
      (await inspector.info('commandstats')).match(/cmdstat_exec:calls=(\d+)/)?.[1] ?? 0,
    );
    expect(await enqueuer.commit([job(1), marker, job(2), job(3)], 'stream')).toEqual({
      added: 4,
      skipped: 0,
    });
    const after = Number(
      (await inspector.info('commandstats')).match(/cmdstat_exec:calls=(\d+)/)?.[1] ?? 0,
    );
    expect(after - before).toBe(3);
    expect(await waiting()).toEqual(['job-1', 'handoff-key-2', 'job-2', 'job-3']);
    expect(await watermark()).toBe(job(3).position);
    await enqueuer.close();
  });

  test('Redis lost its scripts (SCRIPT FLUSH): the commit fails, the watermark stays, the retry adds every job once', async () => {
    const { enqueuer, waiting, watermark } = setup();
    await enqueuer.commit([job(1), job(2)], 'stream');
    await inspector.script('FLUSH');

    const failure = await enqueuer.commit([job(3), job(4)], 'stream').catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as Error).message).toMatch(/^NOSCRIPT/);
    expect(classifyRedisError(failure, connection)).toEqual({ kind: 'unavailable' });
    expect(await watermark()).toBe(job(2).position);
    expect(await waiting()).toEqual(['job-1', 'job-2']);

    // What the ingest does next: reload the watermarks and commit the batch again.
    await connection.ping(); // the enqueuer reconnected; wait until the connection is back
    await enqueuer.loadWatermarks('stream');
    expect(await enqueuer.commit([job(3), job(4)], 'stream')).toEqual({ added: 2, skipped: 0 });
    expect(await waiting()).toEqual(['job-1', 'job-2', 'job-3', 'job-4']);
    expect(await watermark()).toBe(job(4).position);
    await enqueuer.close();
  });
});
