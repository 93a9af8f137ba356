/**
 * Fenced writes on a real Redis: a standby-capable ingest commits only while its fencing number
 * is the latest. A deposed leader's commit is refused whole (no job, no watermark), also when
 * the fence moves between its check and EXEC (the WATCH aborts EXEC); its token save and its ring
 * change are refused too.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger } from '@changeq/shared';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { Enqueuer, type PlannedJob } from '../src/enqueuer.js';
import { FencedError } from '../src/fenced-error.js';
import { ingestKeys, workerKeys } from '../src/keys.js';
import { PositionStore } from '../src/position-store.js';
import { RingStore } from '../src/ring-store.js';
import { Scripts } from '../src/scripts.js';
import type { StoredPosition } from '../src/codecs/position.js';

const log = createLogger({ name: 'test', level: 'silent' });

describe('fenced writes', () => {
  let server: RunningRedis;
  let connection: Redis;
  let inspector: Redis;
  let n = 0;

  beforeAll(async () => {
    server = await startRedis();
    connection = new Redis(server.url, { maxRetriesPerRequest: null });
    inspector = new Redis(server.url);
  });
  afterAll(async () => {
    connection?.disconnect();
    inspector?.disconnect();
    await server?.stop();
  });

  const job = (i: number): PlannedJob => ({
    queue: 'alpha',
    name: 'insert shop.orders',
    jobId: `job-${i}`,
    json: JSON.stringify({ i }),
    position: `82${String(i).padStart(12, '0')}`,
  });

  /** Two ingest processes of one id (their own enqueuers) over a fresh prefix. */
  const setup = () => {
    const prefix = `fence${++n}`;
    const keys = ingestKeys(prefix, 'main');
    const enqueuer = (beforeExec?: (queue: string) => Promise<void>) =>
      new Enqueuer({
        redis: connection,
        prefix,
        queueNames: ['alpha'],
        watermarkKey: (queue, kind) => keys.watermark(queue, kind),
        fenceKey: (queue) => keys.queueFence(queue),
        jobOptions: {},
        log,
        ...(beforeExec ? { beforeExec } : {}),
      });
    const jobs = async () =>
      (await inspector.keys(`${prefix}:alpha:job-*`))
        .filter((key) => !key.endsWith(':lock'))
        .sort();
    const watermark = () => inspector.get(keys.watermark('alpha'));
    return { prefix, keys, enqueuer, jobs, watermark };
  };

  test('the leader commits; after a newer leader raised the fence, the old one is refused whole', async () => {
    const { enqueuer, jobs, watermark } = setup();
    const old = enqueuer();
    await old.setFence(1);
    expect(await old.commit([job(1)], 'stream')).toEqual({ added: 1, skipped: 0 });

    const next = enqueuer();
    await next.setFence(2);
    await expect(old.commit([job(2), job(3)], 'stream')).rejects.toBeInstanceOf(FencedError);
    expect(await jobs()).toEqual([expect.stringMatching(/job-1$/)]);
    expect(await watermark()).toBe(job(1).position);

    await next.loadWatermarks('stream');
    expect(await next.commit([job(1), job(2)], 'stream')).toEqual({ added: 1, skipped: 1 });
    expect(await watermark()).toBe(job(2).position);
    // The deposed one cannot raise the fence back either.
    await expect(old.setFence(1)).rejects.toBeInstanceOf(FencedError);
    await Promise.all([old.close(), next.close()]);
  });

  test('the fence raised between the check and EXEC aborts the transaction: no job, no watermark', async () => {
    const { keys, enqueuer, jobs, watermark } = setup();
    let raised = false;
    const old = enqueuer(async (queue) => {
      if (raised) return;
      raised = true;
      // Another ingest takes over right after this one checked the fence, before its EXEC.
      expect(await Scripts.of(inspector).raiseFence(keys.queueFence(queue), 2)).toBe(2);
    });
    await old.setFence(1);
    const refused = await old.commit([job(1), job(2)], 'stream').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(FencedError);
    expect((refused as Error).message).toMatch(/aborted by the WATCH/);
    expect(await jobs()).toEqual([]);
    expect(await watermark()).toBeNull();
    await old.close();
  });

  test('the fence check sent ahead after a commit still catches a raise that came after it', async () => {
    const { keys, enqueuer, jobs, watermark } = setup();
    const old = enqueuer();
    await old.setFence(1);
    await old.commit([job(1)], 'stream'); // sends the next commit's WATCH and GET ahead
    await new Promise((resolve) => setTimeout(resolve, 50)); // ...and lets them be answered
    expect(await Scripts.of(inspector).raiseFence(keys.queueFence('alpha'), 2)).toBe(2);
    const refused = await old.commit([job(2)], 'stream').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(FencedError);
    expect(await jobs()).toEqual([expect.stringMatching(/job-1$/)]);
    expect(await watermark()).toBe(job(1).position);
    await old.close();
  });

  test("a fence check sent ahead does not outlive its term: the next term's raise does not abort its own commit", async () => {
    const { enqueuer, jobs } = setup();
    const ingest = enqueuer();
    await ingest.setFence(1);
    await ingest.commit([job(1)], 'stream');
    await new Promise((resolve) => setTimeout(resolve, 50));
    await ingest.setFence(null); // the term ends (e.g. a Redis failure gave the lease back)
    await ingest.setFence(2); // the next term raises the copy this lane was WATCHing
    expect(await ingest.commit([job(2)], 'stream')).toEqual({ added: 1, skipped: 0 });
    expect(await jobs()).toHaveLength(2);
    await ingest.close();
  });

  test('a queue that joins under a fence is raised before its first commit', async () => {
    const { keys, enqueuer } = setup();
    const leader = enqueuer();
    await leader.setFence(3);
    await leader.ensureQueues(['bravo']);
    expect(await inspector.get(keys.queueFence('bravo'))).toBe('3');
    await leader.close();
  });

  test("a deposed leader's token save is refused and the token stays as the new leader left it", async () => {
    const { prefix, keys } = setup();
    const position = (data: string): StoredPosition => ({
      token: { _data: data },
      clusterTime: null,
      wallTime: null,
      savedAt: new Date(0),
    });
    await inspector.set(keys.fence, '1');
    const old = new PositionStore(connection, prefix, 'main');
    await old.loadStart();
    old.setFence(1);
    await old.save(position('8201'));
    await inspector.incr(keys.fence); // another ingest acquired the lease: fence 2
    const before = await inspector.get(keys.token);
    await expect(old.save(position('8202'))).rejects.toBeInstanceOf(FencedError);
    expect(await inspector.get(keys.token)).toBe(before);
  });

  test("a deposed leader's ring change and handoff marks are refused", async () => {
    const { prefix, keys } = setup();
    const fence = (value: number) => ({ key: keys.ringFence, queueKey: keys.queueFence, value });
    const old = new RingStore(connection, prefix);
    await old.setFence(fence(1));
    await inspector.set(keys.queueFence('alpha'), '1'); // as the leader's enqueuer raised it
    await old.markHandoff('alpha', 2);
    const epoch = { epoch: 1, names: ['alpha'], from: '', at: new Date(0).toISOString() };
    await old.save([epoch]);
    const next = new RingStore(connection, prefix);
    await next.setFence(fence(2));
    await inspector.set(keys.queueFence('alpha'), '2');
    const stored = await inspector.get(old.key);
    await expect(
      old.save([epoch, { ...epoch, epoch: 2, names: ['bravo'], from: '82' }]),
    ).rejects.toBeInstanceOf(FencedError);
    expect(await inspector.get(old.key)).toBe(stored);
    // Nor can it mark a worker's handoff (the queue's fence copy is the new leader's now).
    await expect(old.markHandoff('alpha', 3)).rejects.toBeInstanceOf(FencedError);
    expect(await inspector.exists(workerKeys(prefix, 'alpha').handoff(2))).toBe(1);
    expect(await inspector.exists(workerKeys(prefix, 'alpha').handoff(3))).toBe(0);
  });
});
