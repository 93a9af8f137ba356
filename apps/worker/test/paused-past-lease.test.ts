/**
 * A process paused past its lease (here: its event loop blocked, as SIGSTOP, a stalled VM or a
 * long GC would) wakes up with its handlers' timers due before the lease's expiry timer. By its
 * own clock the lease has lapsed, so: a handler that reads `ctx.signal` right before its side
 * effect finds it aborted, and no handler call starts until the lease is acquired again (found
 * by `npm run chaos`, row worker-sigstop).
 */
import { describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import type { ChangeEvent, HandlerContext } from '@changeq/shared';
import { startWorker } from '../src/runner.js';
import { capturedLog, redisForFile, testSettings } from './helpers/in-process.js';
import { documentEvent, enqueue } from './helpers/events.js';
import { waitFor } from '@changeq/testkit';

const LEASE_TTL_MS = 1_000;

describe('a worker paused past its lease', () => {
  const servers = redisForFile();

  it('aborts the calls under way and starts none until it holds the lease again', async () => {
    const blocker = documentEvent('insert', 'shop', 'orders', 'blocker', { doc: 'blocker' });
    const careful = documentEvent('insert', 'shop', 'orders', 'careful', { doc: 'careful' });
    const others = Array.from({ length: 20 }, (_, n) =>
      documentEvent('insert', 'shop', 'orders', `other${n}`, { doc: `other${n}` }),
    );
    await enqueue(servers.redis, [careful, blocker, ...others], () => 'alpha');
    const { lines, log } = capturedLog();
    const starts: { id: string; at: number }[] = [];
    const effects: string[] = [];
    let carefulSaw: boolean | undefined;
    let pauseEnded = 0;
    const worker = await startWorker({
      worker: 'alpha',
      redisUrl: servers.url,
      leaseTtlMs: LEASE_TTL_MS,
      settings: testSettings({ attempts: 3 }),
      dispatch: (_event: ChangeEvent, ctx: HandlerContext) => {
        starts.push({ id: ctx.jobId, at: Date.now() });
        if (ctx.jobId === careful.id && carefulSaw === undefined) {
          // Waits a little, then checks its signal right before its side effect.
          const result = new Promise((resolve) => setTimeout(resolve, 100)).then(() => {
            carefulSaw = ctx.signal.aborted;
            if (ctx.signal.aborted) throw new Error('aborted before the side effect');
            effects.push(ctx.jobId);
          });
          return { matched: true, result };
        }
        if (ctx.jobId === blocker.id && pauseEnded === 0) {
          // The whole process stops for 1.5 leases: no timer, no I/O.
          const until = Date.now() + LEASE_TTL_MS * 1.5;
          while (Date.now() < until);
          pauseEnded = Date.now();
          // It finishes later, so its completion (which checks the lease) comes after the
          // careful handler's timer.
          const result = new Promise((resolve) => setTimeout(resolve, 300)).then(() => {
            if (ctx.signal.aborted) throw new Error('aborted before the side effect');
            effects.push(ctx.jobId);
          });
          return { matched: true, result };
        }
        if (ctx.signal.aborted) throw new Error('aborted before the side effect');
        effects.push(ctx.jobId);
        return { matched: true, result: undefined };
      },
      log,
    });
    const queue = new Queue('alpha', { connection: servers.redis, prefix: 'changeq' });
    try {
      await waitFor(
        async () => (await queue.getCompletedCount()) === 2 + others.length,
        async () => `${JSON.stringify(await queue.getJobCounts())}\n${lines.join('')}`,
        20_000,
      );
      expect(carefulSaw).toBe(true);
      expect(lines.join('')).toMatch(/the lease lapsed by this process's clock/);
      // Between the end of the pause and the lease's loss (the new term starts after it), no
      // call started.
      const lostAt = lines
        .map((line) => JSON.parse(line) as { msg: string; time: number | string })
        .filter((entry) => entry.msg.startsWith('lease lost'))
        .map((entry) => new Date(entry.time).getTime())
        .find((at) => at >= pauseEnded);
      expect(lostAt).toBeDefined();
      expect(starts.filter((s) => s.at >= pauseEnded && s.at <= lostAt!)).toEqual([]);
      // Every event's side effect happened exactly once.
      expect(effects.sort()).toEqual([careful.id, blocker.id, ...others.map((e) => e.id)].sort());
    } finally {
      await queue.close();
      await worker.stop(1_000);
    }
  });
});
