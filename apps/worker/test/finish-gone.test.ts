/**
 * A completion that finds its job gone: Redis completed (and, removing completed jobs at once,
 * deleted) the job, but the reply was lost with the connection, so the worker tries again and
 * BullMQ answers JobNotExist. The first try did the work: the job counts as finished and its
 * document's next events run (found by `npm run chaos`, row redis-kill-1s).
 */
import { describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import type { ChangeEvent, HandlerContext } from '@changeq/shared';
import { startWorker } from '../src/runner.js';
import { capturedLog, redisForFile, testSettings } from './helpers/in-process.js';
import { documentEvent, enqueue } from './helpers/events.js';
import { waitFor } from '@changeq/testkit';

describe('a job gone when its completion is tried', () => {
  const servers = redisForFile();

  it('counts as finished, and the document goes on', async () => {
    const first = documentEvent('insert', 'shop', 'orders', 'gone', { doc: 'gone', n: 1 });
    const second = documentEvent('update', 'shop', 'orders', 'gone', { doc: 'gone', n: 2 });
    await enqueue(servers.redis, [first, second], () => 'alpha');
    const { lines, log } = capturedLog();
    const queue = new Queue('alpha', { connection: servers.redis, prefix: 'changeq' });
    const calls: string[] = [];
    const worker = await startWorker({
      worker: 'alpha',
      redisUrl: servers.url,
      settings: testSettings(),
      dispatch: (_event: ChangeEvent, ctx: HandlerContext) => {
        calls.push(ctx.jobId);
        // What a completion whose reply was lost leaves (completed jobs removed at once): the
        // job out of the active list, its lock and its hash gone.
        const result =
          ctx.jobId === first.id
            ? servers.redis
                .multi()
                .lrem(queue.toKey('active'), 0, first.id)
                .del(queue.toKey(first.id), `${queue.toKey(first.id)}:lock`)
                .exec()
                .then(() => 'done')
            : 'done';
        return { matched: true, result };
      },
      log,
    });
    try {
      await waitFor(
        async () => calls.includes(second.id),
        () => `calls: ${calls.join(' ')}\n${lines.join('')}`,
        10_000,
      );
      expect(calls).toEqual([first.id, second.id]);
      expect(lines.join('')).toMatch(/was gone when its completion was tried/);
      expect(lines.join('')).not.toMatch(/could not complete/);
    } finally {
      await queue.close();
      await worker.stop(1_000);
    }
  });
});
