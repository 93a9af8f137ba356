/**
 * In-process worker (startWorker) against real Redis: losing the lease stops handler calls at
 * once; getting it back recovers the held jobs in order. Also checks the scheduler hooks.
 */
import { describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { createLogger, type ChangeEvent, type HandlerContext } from '@changeq/shared';
import { startWorker } from '../src/runner.js';
import { redisForFile } from './helpers/in-process.js';
import type { SchedulerHooks } from '../src/scheduler/hooks.js';
import { enqueue } from './helpers/events.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '@changeq/testkit';
import { buildScenario, orderViolation, seeded, type Call } from './helpers/scenario.js';

describe('lease loss', () => {
  const servers = redisForFile();

  it('stops starting handler calls when another process holds the lease, and resumes in order when it gets it back', async () => {
    const scenario = buildScenario(10, 20, seeded(8));
    await enqueue(servers.redis, scenario.events, () => 'alpha');
    const calls = new Map<string, Call[]>();
    const starts: number[] = [];
    const counts = { queued: 0, started: 0, ok: 0, aborted: 0, done: 0, backlog: 0 };
    const hooks: SchedulerHooks = {
      jobQueued: () => counts.queued++,
      handlerStarted: () => counts.started++,
      handlerFinished: (e) => {
        if (e.outcome === 'ok') counts.ok++;
        if (e.outcome === 'aborted') counts.aborted++;
      },
      jobDone: (e) => {
        if (e.result === 'completed') counts.done++;
      },
      backlog: () => counts.backlog++,
    };
    const dispatch = (event: ChangeEvent, ctx: HandlerContext) => ({
      matched: true as const,
      result: (async () => {
        starts.push(Date.now());
        const fields =
          (event as { updateDescription?: { updatedFields: { doc: string; n: number } } })
            .updateDescription?.updatedFields ??
          (event as unknown as { fullDocument: { doc: string; n: number } }).fullDocument;
        await new Promise((resolve, reject) => {
          const timer = setTimeout(resolve, 25);
          ctx.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            reject(new Error('aborted'));
          });
        });
        const list = calls.get(fields.doc) ?? [];
        list.push({ n: fields.n, attempt: ctx.attempt, ok: true, pid: 0 });
        calls.set(fields.doc, list);
      })(),
    });
    const worker = await startWorker({
      worker: 'alpha',
      redisUrl: servers.url,
      settings: {
        concurrency: 4,
        attempts: 3,
        backoffMs: 10,
        maxBackoffMs: 50,
        timeoutMs: 5_000,
        deadLetter: 'block',
      },
      dispatch,
      log: createLogger({ name: 'test', level: 'silent' }),
      leaseTtlMs: 1_000,
      hooks: [hooks],
    });
    try {
      await waitFor(
        async () => starts.length >= 8,
        () => `${starts.length} calls`,
        10_000,
      );
      expect(worker.state).toBe('active');
      await servers.redis.set('changeq:worker:alpha:lease', 'another process', 'PX', 2_000);
      const stolenAt = Date.now();
      await waitFor(
        async () => worker.state === 'standby',
        () => worker.state,
        3_000,
      );
      // Renewal every ttl/5 = 200 ms notices at once; no call may start after that.
      const lateStarts = () => starts.filter((t) => t > stolenAt + 300).length;
      await sleep(1_000);
      expect(lateStarts()).toBe(0);
      expect(worker.state).toBe('standby');
      await servers.redis.del('changeq:worker:alpha:lease');
      const queue = new Queue('alpha', { connection: servers.redis, prefix: 'changeq' });
      await waitFor(
        async () => (await queue.getCompletedCount()) === scenario.events.length,
        async () => JSON.stringify(await queue.getJobCounts()),
        20_000,
      );
      await queue.close();
      // Redis shows a job completed before the worker has its reply and reports it (jobDone):
      // the test, in the same process, may read the count first.
      await waitFor(
        () => counts.done === scenario.events.length,
        () => `jobDone for all ${scenario.events.length} jobs (${counts.done} so far)`,
        5_000,
      );
      expect(lateStarts()).toBeGreaterThan(0);
      for (const [doc, list] of calls) {
        expect(orderViolation(list), doc).toBeUndefined();
        expect(new Set(list.map((c) => c.n)).size).toBe(20);
      }
      expect(counts.done).toBe(scenario.events.length);
      expect(counts.ok).toBeGreaterThanOrEqual(scenario.events.length);
      expect(counts.started).toBe(counts.ok + counts.aborted);
      expect(counts.queued).toBeGreaterThanOrEqual(scenario.events.length);
      expect(counts.backlog).toBeGreaterThan(0);
    } finally {
      await worker.stop(1_000);
    }
  });
});
