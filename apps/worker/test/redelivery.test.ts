/**
 * BullMQ's stalled checker puts back a job that is still running here (its lock lapsed): the job
 * must not run a second time, concurrently or after, and still completes.
 */
import { describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import type { ChangeEvent, HandlerContext } from '@changeq/shared';
import { lockKey } from '@changeq/store';
import { startWorker } from '../src/runner.js';
import { capturedLog, redisForFile, testSettings } from './helpers/in-process.js';
import { documentEvent, enqueue } from './helpers/events.js';
import { waitFor } from '@changeq/testkit';

describe('stalled redelivery of a job still running here', () => {
  const servers = redisForFile();

  it('runs it once and completes it', async () => {
    const slow = documentEvent('insert', 'shop', 'orders', 'slow', { doc: 'slow', n: 1 });
    const next = documentEvent('update', 'shop', 'orders', 'slow', { doc: 'slow', n: 2 });
    await enqueue(servers.redis, [slow, next], () => 'alpha');
    const { lines, log } = capturedLog();
    const calls: string[] = [];
    let release!: () => void;
    const running = new Promise<void>((resolve) => (release = resolve));
    const worker = await startWorker({
      worker: 'alpha',
      redisUrl: servers.url,
      settings: testSettings(),
      dispatch: (_event: ChangeEvent, ctx: HandlerContext) => {
        calls.push(`${ctx.jobId}#${ctx.attempt}`);
        return { matched: true, result: ctx.jobId === slow.id ? running : undefined };
      },
      log,
      stalledIntervalMs: 150,
      lockDurationMs: 20_000,
    });
    const queue = new Queue('alpha', { connection: servers.redis, prefix: 'changeq' });
    try {
      await waitFor(
        async () => calls.length === 1,
        () => calls.join(' '),
        5_000,
      );
      // The lock lapses (as if Redis had been unreachable): the stalled checker re-queues the job.
      await servers.redis.del(`changeq:alpha:${slow.id}:lock`);
      expect(lockKey(queue, slow.id)).toBe(`changeq:alpha:${slow.id}:lock`);
      await waitFor(
        async () =>
          lines.some((l) =>
            /redelivered while still held here|took back a held job that BullMQ had put back/.test(
              l,
            ),
          ),
        () => lines.join(''),
        5_000,
      );
      expect(await queue.getJobState(slow.id)).toBe('active');
      release();
      await waitFor(
        async () => (await queue.getCompletedCount()) === 2,
        async () => JSON.stringify(await queue.getJobCounts()) + lines.join(''),
        5_000,
      );
      expect(calls).toEqual([`${slow.id}#1`, `${next.id}#1`]);
    } finally {
      await queue.close();
      await worker.stop(1_000);
    }
  });
});
