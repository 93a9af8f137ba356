/**
 * dead_letter = "block" in detail, with an in-process worker on real Redis and BullMQ: parking,
 * events arriving while blocked, discard, retry queued while no worker runs, and a retry that
 * fails again.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { createLogger, type ChangeEvent, type HandlerContext } from '@changeq/shared';
import { discardDeadLetter, listDeadLetters, retryDeadLetter } from '@changeq/store';
import { startWorker, type RunningWorker } from '../src/runner.js';
import { documentEvent, enqueue, type TestEvent } from './helpers/events.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '@changeq/testkit';

describe('dead letters with dead_letter = "block"', () => {
  let server: RunningRedis;
  let redis: Redis;
  let worker: RunningWorker | undefined;
  const calls: string[] = [];
  const failing = new Set<string>();
  const target = () => ({ redis, worker: 'alpha' });

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  beforeEach(async () => {
    await redis.flushdb();
    calls.length = 0;
    failing.clear();
  });
  afterEach(async () => {
    await worker?.stop(1_000);
    worker = undefined;
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });

  const start = async () => {
    worker = await startWorker({
      worker: 'alpha',
      redisUrl: server.url,
      settings: {
        concurrency: 4,
        attempts: 2,
        backoffMs: 5,
        maxBackoffMs: 10,
        timeoutMs: 5_000,
        deadLetter: 'block',
      },
      dispatch: (event: ChangeEvent, ctx: HandlerContext) => {
        const { doc, n } = fieldsOf(event);
        const label = `${doc}${n}`;
        const fail = failing.has(label);
        calls.push(`${label}${fail ? '!' : ''}${ctx.attempt > 1 ? `@${ctx.attempt}` : ''}`);
        if (fail) throw new Error(`${label} fails`);
        return { matched: true, result: undefined };
      },
      log: createLogger({ name: 'test', level: 'silent' }),
      commandPollMs: 50,
      leaseTtlMs: 1_000,
    });
  };

  function fieldsOf(event: ChangeEvent): { doc: string; n: number } {
    const e = event as {
      fullDocument?: { doc: string; n: number };
      updateDescription?: { updatedFields: { doc: string; n: number } };
    };
    return e.fullDocument ?? e.updateDescription!.updatedFields;
  }

  const events = (doc: string, from: number, to: number): TestEvent[] =>
    Array.from({ length: to - from + 1 }, (_, i) =>
      documentEvent(i + from === 1 ? 'insert' : 'update', 'shop', 'orders', `id-${doc}`, {
        doc,
        n: i + from,
      }),
    );
  const ok = (doc: string) => calls.filter((c) => c.startsWith(doc) && !/[!@]/.test(c));
  const settled = async (predicate: () => boolean | Promise<boolean>, what: string) =>
    waitFor(
      async () => predicate(),
      () => `${what}; calls: ${calls.join(' ')}`,
      10_000,
    );

  it('parks later events (also those arriving while blocked) and discard runs them in order', async () => {
    failing.add('D2');
    await enqueue(redis, [...events('D', 1, 4), ...events('E', 1, 3)], () => 'alpha');
    await start();
    await settled(async () => (await listDeadLetters(target())).length === 3, '1 dead + 2 parked');
    await enqueue(redis, events('D', 5, 6), () => 'alpha');
    await settled(async () => (await listDeadLetters(target())).length === 5, 'D5, D6 parked too');
    const entries = await listDeadLetters(target());
    expect(entries.map((e) => `${e.kind}:${e.info.seq ?? '-'}`)).toEqual([
      'dead:-',
      'parked:1',
      'parked:2',
      'parked:3',
      'parked:4',
    ]);
    expect(ok('E')).toEqual(['E1', 'E2', 'E3']); // other documents went on
    expect(ok('D')).toEqual(['D1']);

    const dead = entries[0]!.jobId;
    await expect(retryDeadLetter(target(), { jobId: entries[1]!.jobId })).rejects.toThrow(
      /parked behind dead letter/,
    );
    await discardDeadLetter(target(), { jobId: dead });
    await settled(() => ok('D').length === 5, 'D3..D6 ran');
    expect(ok('D')).toEqual(['D1', 'D3', 'D4', 'D5', 'D6']);
    expect(await listDeadLetters(target())).toEqual([]);
    expect(await redis.hlen('changeq:worker:alpha:blocked')).toBe(0);
    // Unblocked: a new event of D runs normally.
    await enqueue(redis, events('D', 7, 7), () => 'alpha');
    await settled(() => ok('D').length === 6, 'D7 ran');
  });

  it('carries out a retry requested while no worker runs, and re-blocks when the retry fails again', async () => {
    failing.add('F2');
    failing.add('F3');
    await enqueue(redis, events('F', 1, 5), () => 'alpha');
    await start();
    await settled(async () => (await listDeadLetters(target())).length === 4, '1 dead + 3 parked');
    await worker!.stop(1_000);
    worker = undefined;

    failing.delete('F2'); // F2 is fixed; F3 still fails
    const receipts = await retryDeadLetter(target(), { all: true });
    expect(receipts).toHaveLength(1);
    expect((await listDeadLetters(target()))[0]?.pending).toEqual(['retry']);
    await start();
    await settled(async () => {
      const list = await listDeadLetters(target());
      return list.length === 3 && list[0]?.kind === 'dead' && list[0].info.attempts === 2;
    }, 'F3 is the new dead letter with F4, F5 parked behind it');
    const list = await listDeadLetters(target());
    expect(list.map((e) => e.kind)).toEqual(['dead', 'parked', 'parked']);
    expect(list[0]!.info.error?.message).toBe('F3 fails');
    for (const parked of list.slice(1)) expect(parked.info.blockedBy).toBe(list[0]!.jobId);
    expect(ok('F')).toEqual(['F1', 'F2']);

    failing.delete('F3');
    await retryDeadLetter(target(), { jobId: list[0]!.jobId });
    await settled(() => ok('F').length === 5, 'F3..F5 ran');
    expect(ok('F')).toEqual(['F1', 'F2', 'F3', 'F4', 'F5']);
    await sleep(100);
    expect(await listDeadLetters(target())).toEqual([]);
  });
});
