/**
 * Pins the BullMQ internals listed in src/bullmq-internals.ts against the installed BullMQ: if an
 * upgrade changes one of them, this file fails.
 */
import { afterAll, beforeAll, describe, expect, it, test, vi } from 'vitest';
import { Job, Queue, Worker } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { Binary, Decimal128, Long, ObjectId } from 'mongodb';
import { encodeEvent, decodeEvent, type EventJobData } from '@changeq/shared';
import { startRedis, type RunningRedis } from '@changeq/stack';
import {
  EncodedJob,
  FINISH_JOB_GONE,
  addTransaction,
  defineAddScripts,
  FINISH_LOCK_MISMATCH,
  FINISH_MISSING_LOCK,
  activeJobsInFetchOrder,
  newestActiveJobs,
  completeJob,
  finishErrorCode,
  lockKey,
  queueAddJob,
  queueKey,
  queueConnection,
  reclaimJob,
  takeOverJobs,
  watchMovesToActive,
} from '../src/bullmq-internals.js';
import { queueKeys } from '../src/keys.js';
import { Scripts } from '../src/scripts.js';

describe('BullMQ internals the worker relies on', () => {
  let server: RunningRedis;
  let redis: Redis;
  let n = 0;

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });

  async function setup(jobs: number, workerOpts: Record<string, unknown> = {}) {
    const name = `q${++n}`;
    const queue = new Queue(name, { connection: redis, prefix: 'changeq' });
    await queue.addBulk(
      Array.from({ length: jobs }, (_, i) => ({
        name: 'e',
        data: { i },
        opts: { jobId: `j${i}` },
      })),
    );
    const worker = new Worker(name, null, {
      connection: redis,
      prefix: 'changeq',
      autorun: false,
      skipLockRenewal: true,
      ...workerOpts,
    });
    await worker.waitUntilReady();
    const close = async () => {
      await worker.close(true);
      await queue.close();
    };
    return { name, queue, worker, close };
  }

  it('a job lock is <queue key prefix><id>:lock holding the getNextJob token', async () => {
    const { worker, close } = await setup(1);
    const job = await worker.getNextJob('token-A', { block: false });
    expect(job?.id).toBe('j0');
    expect(lockKey(worker, 'j0')).toBe(`changeq:${worker.name}:j0:lock`);
    expect(await redis.get(lockKey(worker, 'j0'))).toBe('token-A');
    await close();
  });

  it('the active list read from its end is the fetch order', async () => {
    const { worker, close } = await setup(4);
    for (let i = 0; i < 4; i++) await worker.getNextJob('t', { block: false });
    const job1 = await worker.getNextJob('t', { block: false });
    expect(job1).toBeUndefined();
    // Finishing one in the middle keeps the others' order.
    const { Job } = await import('bullmq');
    await (await Job.fromId(worker, 'j1'))!.moveToCompleted('ok', 't', false);
    expect(await activeJobsInFetchOrder(redis, worker)).toEqual(['j0', 'j2', 'j3']);
    // The newest ones alone, in the same order.
    expect(await newestActiveJobs(redis, worker, 2)).toEqual(['j2', 'j3']);
    expect(await newestActiveJobs(redis, worker, 9)).toEqual(['j0', 'j2', 'j3']);
    await close();
  });

  it('moving a job to active leaves the queue marker set, even when it was the last one waiting', async () => {
    const { worker, close } = await setup(1);
    const marker = queueKey(worker, 'marker');
    await redis.del(marker); // as a worker's BZPOPMIN leaves it
    expect((await worker.getNextJob('t', { block: false }))?.id).toBe('j0');
    expect(await redis.zrange(marker, 0, -1, 'WITHSCORES')).toEqual(['0', '0']);
    await close();
  });

  it('completing a job with fetchNext moves the next waiting job to active and returns it', async () => {
    const { worker, close } = await setup(2);
    const first = (await worker.getNextJob('t', { block: false }))!;
    const next = await completeJob(worker, first, { ok: 1 }, 't', true);
    expect(next?.id).toBe('j1');
    expect(next?.data).toEqual({ i: 1 });
    expect(await activeJobsInFetchOrder(redis, worker)).toEqual(['j1']);
    expect(await redis.get(lockKey(worker, 'j1'))).toBe('t');
    expect(await completeJob(worker, next!, null, 't', true)).toBeUndefined();
    expect(await first.getState()).toBe('completed');
    await close();
  });

  // 4a: the worker takes the order of its jobs from here, not from the active list.
  it('watchMovesToActive sees each job moved to active, in the order Redis moved it, before BullMQ hands it over', async () => {
    const { worker, queue, close } = await setup(300);
    const seen: string[] = [];
    const stop = watchMovesToActive(redis, worker, (id) => seen.push(id));
    // Another queue on the same connection is not reported to this one.
    const other = await setup(5);
    try {
      let early = 0;
      const handOver = (job: Job | undefined) => {
        if (job?.id !== undefined && seen.includes(job.id)) early++;
        return job;
      };
      const held: Job[] = [];
      const fetch = async (count: number) => {
        const jobs = await Promise.all(
          Array.from({ length: count }, () =>
            worker.getNextJob('t', { block: false }).then(handOver),
          ),
        );
        for (const job of jobs) if (job) held.push(job);
      };
      await fetch(16);
      await other.worker.getNextJob('t', { block: false });
      let round = 0;
      while (held.length > 0) {
        // Finishing fetches the next jobs in the same calls, while plain fetches go alongside;
        // once, BullMQ's scripts are flushed, so ioredis sends them again (NOSCRIPT).
        if (round++ === 3) await redis.script('FLUSH');
        const finishing = held.splice(0, held.length);
        const nexts = finishing.map((job) =>
          completeJob(worker, job, null, 't', true).then(handOver),
        );
        await fetch(4);
        for (const next of await Promise.all(nexts)) if (next) held.push(next);
      }
      const events = await redis.xrange(worker.keys.events!, '-', '+');
      const moved = events
        .map(([, fields]) => fields)
        .filter((fields) => fields[1] === 'active')
        .map((fields) => fields[3]);
      expect(moved).toHaveLength(300);
      expect(seen).toEqual(moved);
      expect(early).toBe(300);
      // Stopped: nothing more is reported.
      stop?.();
      await queue.add('e', {}, { jobId: 'late' });
      expect((await worker.getNextJob('t', { block: false }))?.id).toBe('late');
      expect(seen).toHaveLength(300);
    } finally {
      stop?.();
      await other.close();
      await close();
    }
  });

  it('watchMovesToActive declines a Redis Cluster', () => {
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    expect(
      watchMovesToActive(
        cluster as unknown as Redis,
        { keys: { active: 'a' }, toKey: (t) => t },
        () => undefined,
      ),
    ).toBeUndefined();
    cluster.disconnect();
  });

  it('taking a lock over lets the new token finish the job and refuses the old one', async () => {
    const { worker, close } = await setup(2);
    const a = (await worker.getNextJob('old', { block: false }))!;
    const b = (await worker.getNextJob('old', { block: false }))!;
    expect(await takeOverJobs(redis, worker, ['j0', 'j1', 'not-active'], 'new', 30_000)).toEqual([
      'j0',
      'j1',
    ]);
    let code: number | undefined;
    await a.moveToCompleted('x', 'old', false).catch((e: unknown) => (code = finishErrorCode(e)));
    expect(code).toBe(FINISH_LOCK_MISMATCH);
    await a.moveToCompleted('x', 'new', false);
    expect(await a.getState()).toBe('completed');
    // A missing lock is reported as such.
    await redis.del(lockKey(worker, 'j1'));
    await b.moveToCompleted('x', 'new', false).catch((e: unknown) => (code = finishErrorCode(e)));
    expect(code).toBe(FINISH_MISSING_LOCK);
    await close();
  });

  it('completing again a job completed and removed (a retry after a lost reply) says it is gone', async () => {
    const { worker, close } = await setup(1);
    const job = (await worker.getNextJob('t', { block: false }))!;
    await job.moveToCompleted('x', 't', false);
    await job.remove();
    let code: number | undefined;
    await job.moveToCompleted('x', 't', false).catch((e: unknown) => (code = finishErrorCode(e)));
    expect(code).toBe(FINISH_JOB_GONE);
    await close();
  });

  it('the stalled checker re-queues only lock-less active jobs, at the head of wait, never failing them with a huge maxStalledCount', async () => {
    const { worker, queue, close } = await setup(3, {
      stalledInterval: 100,
      maxStalledCount: Number.MAX_SAFE_INTEGER,
    });
    await worker.getNextJob('t', { block: false }); // j0
    await worker.getNextJob('t', { block: false }); // j1
    await takeOverJobs(redis, worker, ['j1'], 't', 60_000);
    await redis.del(lockKey(worker, 'j0')); // j0's process died and its lock expired
    await worker.startStalledCheckTimer();
    await vi.waitFor(async () => expect(await queue.getJobState('j0')).toBe('waiting'), {
      timeout: 5_000,
      interval: 100,
    });
    expect(await queue.getJobState('j1')).toBe('active');
    // RPUSH onto wait: j0 is fetched before j2, which was waiting all along.
    const next = await worker.getNextJob('t2', { block: false });
    expect(next?.id).toBe('j0');
    expect(await redis.hget(`changeq:${worker.name}:j0`, 'stc')).toBe('1');
    expect(await redis.hget(`changeq:${worker.name}:j0`, 'defa')).toBeNull();
    await close();
  });

  it('reclaimJob takes back a held job that was put back in wait, or relocks it in active', async () => {
    const { worker, queue, close } = await setup(2);
    await worker.getNextJob('mine', { block: false }); // j0
    await redis.del(lockKey(worker, 'j0'));
    expect(await reclaimJob(redis, worker, 'j0', 'mine', 30_000)).toBe('active');
    expect(await redis.get(lockKey(worker, 'j0'))).toBe('mine');
    // Simulate the stalled checker's move back to wait.
    await redis.lrem(`changeq:${worker.name}:active`, 1, 'j0');
    await redis.rpush(`changeq:${worker.name}:wait`, 'j0');
    expect(await reclaimJob(redis, worker, 'j0', 'mine', 30_000)).toBe('moved-back');
    expect(await queue.getJobState('j0')).toBe('active');
    expect(await reclaimJob(redis, worker, 'nope', 'mine', 30_000)).toBe('gone');
    // Never steals a lock another process holds.
    await redis.set(lockKey(worker, 'j0'), 'theirs');
    expect(await reclaimJob(redis, worker, 'j0', 'mine', 30_000)).toBe('foreign');
    expect(await redis.get(lockKey(worker, 'j0'))).toBe('theirs');
    await close();
  });
});

describe('BullMQ internals the ingest relies on', () => {
  let server: RunningRedis;
  let connection: Redis;

  beforeAll(async () => {
    server = await startRedis();
    connection = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    connection?.disconnect();
    await server?.stop();
  });

  test("a queue's connection is the one it was given, and a job's hash is the key schema's", async () => {
    const queue = new Queue('conn', { connection, prefix: 'internals' });
    const client = await queueConnection(queue);
    expect(queue.toKey('j1')).toBe(queueKeys('internals', 'conn').job('j1'));
    // Scripts defined through it are defined on the connection itself, and run in its MULTI.
    Scripts.of(client);
    expect(typeof (connection as unknown as Record<string, unknown>)['changeq:parkEvent']).toBe(
      'function',
    );
    const tx = client.multi();
    Scripts.of(client).queueWatermark(tx, { watermark: 'internals:wm', jobPrefix: 'x:' }, '1', []);
    expect(await tx.exec()).toEqual([[null, 1]]);
    await queue.close();
  });

  test('Job#addJob queues its script on a transaction without sending it; EXEC answers the job id', async () => {
    const queue = new Queue('tx', { connection, prefix: 'internals' });
    const tx = (await queueConnection(queue)).multi();
    await queueAddJob(new Job(queue, 'e', { n: 1 }, { jobId: 'j1' }, 'j1'), tx);
    expect(await connection.exists(queue.toKey('j1'))).toBe(0);
    expect(await tx.exec()).toEqual([[null, 'j1']]);
    expect(await connection.hget(queue.toKey('j1'), 'data')).toBe('{"n":1}');
    await queue.close();
  });

  test('a commit lane (only the add scripts defined) adds standard, delayed and prioritized jobs; its transactions carry no other script', async () => {
    const queue = new Queue('lane', { connection, prefix: 'internals' });
    const lane = connection.duplicate();
    defineAddScripts(lane);
    const scripts = Scripts.forCommits(lane);
    const tx = addTransaction(lane);
    await queueAddJob(new Job(queue, 'e', { n: 1 }, { jobId: 'j1' }, 'j1'), tx);
    await queueAddJob(new Job(queue, 'e', { n: 2 }, { jobId: 'j2', delay: 60_000 }, 'j2'), tx);
    await queueAddJob(new Job(queue, 'e', { n: 3 }, { jobId: 'j3', priority: 5 }, 'j3'), tx);
    const { jobPrefix } = queueKeys('internals', 'lane');
    scripts.queueWatermark(tx, { watermark: 'internals:lane-wm', jobPrefix }, '1', [
      'j1',
      'j2',
      'j3',
    ]);
    expect(await tx.exec()).toEqual([
      [null, 'j1'],
      [null, 'j2'],
      [null, 'j3'],
      [null, 1],
    ]);
    expect(await queue.getJobState('j1')).toBe('waiting');
    expect(await queue.getJobState('j2')).toBe('delayed');
    expect(await queue.getJobState('j3')).toBe('prioritized');
    // ioredis copies each command defined on a connection onto every transaction it makes (what
    // the lane saves), so a transaction shows which scripts its connection has.
    const scriptCommands = (transaction: object) =>
      Object.keys(transaction)
        .filter((key) => key.includes(':') && !key.endsWith('Buffer'))
        .map((key) => key.replace(/:\d+\.\d+\.\d+$/, ''))
        .sort();
    expect(scriptCommands(addTransaction(lane))).toEqual([
      'addDelayedJob',
      'addParentJob',
      'addPrioritizedJob',
      'addStandardJob',
      'changeq:setWatermarkIfAllPresent',
    ]);
    expect(scriptCommands((await queueConnection(queue)).multi()).length).toBeGreaterThan(40);
    // The lane's gateway runs nothing else.
    await expect(scripts.raiseFence('internals:fence', 1)).rejects.toThrow(
      /raiseFence is not defined on this connection/,
    );
    lane.disconnect();
    await queue.close();
  });
});

/**
 * The ingest hands BullMQ each job's data as JSON text it encoded in its reader thread
 * (EncodedJob). Held here against BullMQ itself on a real Redis: the stored job must be what a
 * plain Job with the parsed data stores, and a BullMQ Worker must read the same data back. If a
 * BullMQ upgrade stopped serialising through Job#asJSON, these fail.
 */
describe('EncodedJob', () => {
  let redis: RunningRedis;
  let connection: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  });

  afterAll(async () => {
    connection?.disconnect();
    await redis?.stop();
  });

  const event = {
    _id: { _data: '8263A1B2C3000000012B022C0100296E5A1004' },
    operationType: 'insert',
    ns: { db: 'shop', coll: 'orders' },
    documentKey: { _id: new ObjectId('64b7f0c2a1b2c3d4e5f60718') },
    fullDocument: {
      _id: new ObjectId('64b7f0c2a1b2c3d4e5f60718'),
      total: Decimal128.fromString('12.50'),
      count: Long.fromString('9007199254740993'),
      blob: new Binary(Buffer.from('änd "quotes" \\ and\nnewlines'), 0),
      at: new Date('2026-11-22T05:00:00.000Z'),
    },
  };

  test('stores exactly what a plain Job with the parsed data stores', async () => {
    const data = encodeEvent(event, { ns: 'shop.orders', op: 'insert', doc: 'd1' });
    const json = JSON.stringify(data);
    const opts = { removeOnComplete: 100, removeOnFail: 1000, jobId: 'j1' };
    // The same job id in two queues of one prefix, added in one transaction.
    const plainQueue = new Queue('plain', { connection, prefix: 'encoded' });
    const encodedQueue = new Queue('encoded', { connection, prefix: 'encoded' });
    const tx = (await queueConnection(plainQueue)).multi();
    await queueAddJob(new Job(plainQueue, 'insert shop.orders', JSON.parse(json), opts, 'j1'), tx);
    await queueAddJob(new EncodedJob(encodedQueue, 'insert shop.orders', json, opts, 'j1'), tx);
    const results = await tx.exec();
    expect(results?.map(([error]) => error)).toEqual([null, null]);

    const [plain, encoded] = await Promise.all([
      connection.hgetall('encoded:plain:j1'),
      connection.hgetall('encoded:encoded:j1'),
    ]);
    expect(encoded.data).toBe(json);
    const { timestamp: t1, ...plainRest } = plain;
    const { timestamp: t2, ...encodedRest } = encoded;
    expect(Number(t1)).toBeGreaterThan(0);
    expect(Number(t2)).toBeGreaterThan(0);
    expect(encodedRest).toEqual(plainRest);
    expect(Object.keys(encodedRest)).toEqual(expect.arrayContaining(['data', 'name', 'opts']));
    expect(await connection.lrange('encoded:encoded:wait', 0, -1)).toEqual(['j1']);
    await Promise.all([plainQueue.close(), encodedQueue.close()]);
  });

  test("a BullMQ Worker receives the data object, and the worker's decoder restores the event", async () => {
    const data = encodeEvent(event, { ns: 'shop.orders', op: 'insert', doc: 'd1' });
    const queue = new Queue('roundtrip', { connection, prefix: 'encoded' });
    const tx = (await queueConnection(queue)).multi();
    await queueAddJob(
      new EncodedJob(queue, 'insert shop.orders', JSON.stringify(data), { jobId: 'j1' }, 'j1'),
      tx,
    );
    await tx.exec();
    const received = await new Promise<EventJobData>((resolve, reject) => {
      const worker = new Worker<EventJobData>(
        'roundtrip',
        async (job) => {
          resolve(job.data);
        },
        { connection: connection.duplicate(), prefix: 'encoded' },
      );
      worker.on('error', reject);
      worker.on('completed', () => void worker.close());
    });
    expect(received).toEqual(JSON.parse(JSON.stringify(data)));
    expect(decodeEvent(received)).toEqual(event);
    await queue.close();
  });
});
