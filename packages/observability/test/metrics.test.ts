import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { createLogger } from '@changeq/shared';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { workerKeys } from '@changeq/store';
import { freePort } from '@changeq/testkit';
import {
  QueueCounts,
  createIngestMetrics,
  createRegistry,
  createWorkerMetrics,
  jobIdOf,
  registerQueueMetrics,
  registerWorkerLeaseMetrics,
  type IngestStatusLike,
} from '../src/index.js';

const log = createLogger({ name: 'test', level: 'silent' });

/** The value of one sample in the registry's text output, or undefined when it has none. */
async function sample(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const text = await registry.metrics();
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (.+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([key, value]) => have[key] === value))
      return Number(match[3]);
  }
  return undefined;
}

const ts = (seconds: number) => ({ getHighBitsUnsigned: () => seconds });

describe('ingest metrics', () => {
  test("standby ingests: the role, the leader's fence and the processes by role", async () => {
    const registry = createRegistry({ defaultMetrics: false });
    const status: IngestStatusLike = {
      state: 'standby',
      position: null,
      lastEvent: null,
      leadership: {
        role: 'standby',
        fence: null,
        leader: { pid: 42, host: 'db-1', fence: 7 },
        standbys: [{ pid: 43, host: 'db-2' }],
      },
    };
    createIngestMetrics({
      registry,
      status: () => status,
      ingestId: 'main',
      prefix: 'p',
      watch: '',
    });
    expect(await sample(registry, 'changeq_ingest_leader')).toBe(0);
    expect(await sample(registry, 'changeq_ingest_fence')).toBe(7);
    expect(await sample(registry, 'changeq_ingest_processes', { role: 'leader' })).toBe(1);
    expect(await sample(registry, 'changeq_ingest_processes', { role: 'standby' })).toBe(1);
    expect(await sample(registry, 'changeq_ingest_state', { state: 'standby' })).toBe(1);
    status.leadership = { ...status.leadership!, role: 'leader', fence: 7, standbys: [] };
    expect(await sample(registry, 'changeq_ingest_leader')).toBe(1);
    expect(await sample(registry, 'changeq_ingest_processes', { role: 'standby' })).toBe(0);
    // Without standby ingests (no lease): no role to show.
    status.leadership = null;
    expect(await sample(registry, 'changeq_ingest_leader')).toBeNaN();
    expect(await sample(registry, 'changeq_ingest_processes', { role: 'leader' })).toBeUndefined();
  });

  test('events by namespace and operation, jobs, state, lag, token age and backpressure time', async () => {
    const registry = createRegistry({ defaultMetrics: false });
    let nowMs = 1_000_000_000;
    const status: IngestStatusLike = {
      state: 'starting',
      position: null,
      lastEvent: null,
      caughtUpAt: null,
    };
    const metrics = createIngestMetrics({
      registry,
      status: () => status,
      ingestId: 'main',
      prefix: 'changeq',
      watch: 'database shop',
      now: () => nowMs,
    });
    expect(await sample(registry, 'changeq_ingest_lag_seconds')).toBeNaN();
    expect(await sample(registry, 'changeq_ingest_token_age_seconds')).toBeNaN();
    expect(await sample(registry, 'changeq_ingest_state', { state: 'starting' })).toBe(1);

    metrics.committed({
      tally: [
        { namespace: 'shop.orders', operation: 'insert', count: 2 },
        { namespace: 'shop', operation: 'dropDatabase', count: 1 },
      ],
      added: 5,
      skipped: 1,
    });
    metrics.state('streaming');
    status.state = 'streaming';
    const eventSeconds = nowMs / 1000 - 30;
    status.lastEvent = { clusterTime: ts(eventSeconds), wallTime: null };
    status.position = {
      clusterTime: ts(eventSeconds),
      wallTime: null,
      savedAt: new Date(nowMs - 1000),
    };
    const events = (labels: Record<string, string>) =>
      sample(registry, 'changeq_ingest_events_total', labels);
    expect(await events({ namespace: 'shop.orders', operation: 'insert' })).toBe(2);
    expect(await events({ namespace: 'shop', operation: 'dropDatabase' })).toBe(1);
    expect(await sample(registry, 'changeq_ingest_jobs_added_total')).toBe(5);
    expect(await sample(registry, 'changeq_ingest_jobs_skipped_total')).toBe(1);
    expect(await sample(registry, 'changeq_ingest_state', { state: 'streaming' })).toBe(1);
    expect(await sample(registry, 'changeq_ingest_state', { state: 'starting' })).toBe(0);
    expect(await sample(registry, 'changeq_ingest_lag_seconds')).toBe(30);
    expect(await sample(registry, 'changeq_ingest_token_age_seconds')).toBe(30);
    expect(await sample(registry, 'changeq_ingest_last_event_timestamp_seconds')).toBe(
      eventSeconds,
    );

    // A read found nothing waiting: the ingest is current although the last event is old.
    status.caughtUpAt = new Date(nowMs - 500);
    expect(await sample(registry, 'changeq_ingest_lag_seconds')).toBe(0.5);
    expect(await sample(registry, 'changeq_ingest_token_age_seconds')).toBe(30);

    metrics.backpressure(true);
    nowMs += 4000;
    expect(await sample(registry, 'changeq_ingest_backpressure_seconds_total')).toBe(4);
    nowMs += 2000;
    metrics.backpressure(false);
    nowMs += 9000;
    expect(await sample(registry, 'changeq_ingest_backpressure_seconds_total')).toBe(6);
    expect(await sample(registry, 'changeq_ingest_backpressure_pauses_total')).toBe(1);
    expect(
      await sample(registry, 'changeq_ingest_info', {
        ingest_id: 'main',
        prefix: 'changeq',
        watch: 'database shop',
      }),
    ).toBe(1);
  });
});

describe('worker metrics', () => {
  test('hooks labelled by the dispatched event: durations, failures, retries, dead letters, lease', async () => {
    const registry = createRegistry({ defaultMetrics: false });
    const worker: { state?: string } = {};
    const metrics = createWorkerMetrics({
      registry,
      worker: 'alpha',
      state: () => worker.state,
      extra: async () => ({ blockedDocuments: 2, pendingCommands: 1 }),
    });
    expect(await sample(registry, 'changeq_worker_lease_held', { worker: 'alpha' })).toBe(0);
    worker.state = 'active';
    expect(await sample(registry, 'changeq_worker_lease_held', { worker: 'alpha' })).toBe(1);

    const dispatch = metrics.wrapDispatch(
      (
        event: { operationType: string; ns: { db: string; coll: string } },
        ctx: { jobId: string },
      ) => `${event.operationType} ${ctx.jobId}`,
    );
    const order = { operationType: 'update', ns: { db: 'shop', coll: 'orders' } };
    expect(dispatch(order, { jobId: 'j1' })).toBe('update j1');
    metrics.hooks.handlerFinished({ jobId: 'e:j1', durationMs: 20, outcome: 'failed' });
    metrics.hooks.retryScheduled({ jobId: 'e:j1' });
    dispatch(order, { jobId: 'j1' });
    metrics.hooks.handlerFinished({ jobId: 'e:j1', durationMs: 40, outcome: 'failed' });
    metrics.hooks.deadLettered({ jobId: 'e:j1' });
    metrics.hooks.jobDone({ jobId: 'e:j1', result: 'dead-lettered' });
    dispatch({ operationType: 'insert', ns: { db: 'shop', coll: 'users' } }, { jobId: 'j2' });
    metrics.hooks.handlerFinished({ jobId: 'e:j2', durationMs: 5, outcome: 'ok' });
    metrics.hooks.jobDone({ jobId: 'e:j2', result: 'completed' });
    metrics.hooks.jobDone({ jobId: 'e:j3', result: 'parked' });
    metrics.hooks.backlog({ held: 7, running: 3, backingOff: 1 });
    metrics.hooks.ordered([0.05, 1.5, 3]);

    const labels = { worker: 'alpha', namespace: 'shop.orders', operation: 'update' };
    expect(
      await sample(registry, 'changeq_worker_handler_duration_seconds_count', {
        ...labels,
        outcome: 'failed',
      }),
    ).toBe(2);
    expect(
      await sample(registry, 'changeq_worker_handler_duration_seconds_sum', {
        ...labels,
        outcome: 'failed',
      }),
    ).toBeCloseTo(0.06);
    expect(
      await sample(registry, 'changeq_worker_handler_duration_seconds_count', {
        worker: 'alpha',
        namespace: 'shop.users',
        operation: 'insert',
        outcome: 'ok',
      }),
    ).toBe(1);
    expect(await sample(registry, 'changeq_worker_handler_failures_total', labels)).toBe(2);
    expect(await sample(registry, 'changeq_worker_retries_total', labels)).toBe(1);
    expect(await sample(registry, 'changeq_worker_dead_letters_total', labels)).toBe(1);
    for (const [result, count] of [
      ['completed', 1],
      ['dead-lettered', 1],
      ['parked', 1],
    ] as const) {
      expect(
        await sample(registry, 'changeq_worker_jobs_finished_total', { worker: 'alpha', result }),
      ).toBe(count);
    }
    const wait = 'changeq_worker_fetch_order_wait_seconds';
    expect(await sample(registry, `${wait}_count`, { worker: 'alpha' })).toBe(3);
    expect(await sample(registry, `${wait}_sum`, { worker: 'alpha' })).toBeCloseTo(0.00455);
    expect(await sample(registry, `${wait}_bucket`, { worker: 'alpha', le: '0.001' })).toBe(1);
    expect(await sample(registry, `${wait}_bucket`, { worker: 'alpha', le: '0.002' })).toBe(2);
    expect(await sample(registry, 'changeq_worker_jobs_held')).toBe(7);
    expect(await sample(registry, 'changeq_worker_handlers_running')).toBe(3);
    expect(await sample(registry, 'changeq_worker_jobs_backing_off')).toBe(1);
    expect(await sample(registry, 'changeq_worker_blocked_documents')).toBe(2);
    expect(await sample(registry, 'changeq_worker_pending_commands')).toBe(1);
    expect(await sample(registry, 'changeq_worker_state', { state: 'active' })).toBe(1);
  });

  test('Redis failures by operation and kind, reclaims by result, lost data', async () => {
    const registry = createRegistry({ defaultMetrics: false });
    const metrics = createWorkerMetrics({ registry, worker: 'alpha', state: () => 'active' });
    expect(await sample(registry, 'changeq_worker_redis_data_lost_total')).toBe(0);
    metrics.hooks.redisFailed({ operation: 'fetch', error: 'reply' });
    metrics.hooks.redisFailed({ operation: 'fetch', error: 'reply' });
    metrics.hooks.redisFailed({ operation: 'lock-renewal', error: 'connection' });
    metrics.hooks.reclaimed({ result: 'moved-back' });
    metrics.hooks.dataLost({ heldFence: 3, counter: 0, jobsHeld: 5 });
    const failures = (operation: string, error: string) =>
      sample(registry, 'changeq_worker_redis_failures_total', {
        worker: 'alpha',
        operation,
        error,
      });
    expect(await failures('fetch', 'reply')).toBe(2);
    expect(await failures('lock-renewal', 'connection')).toBe(1);
    expect(await failures('commands', 'reply')).toBeUndefined();
    expect(
      await sample(registry, 'changeq_worker_reclaims_total', {
        worker: 'alpha',
        result: 'moved-back',
      }),
    ).toBe(1);
    expect(
      await sample(registry, 'changeq_worker_redis_data_lost_total', { worker: 'alpha' }),
    ).toBe(1);
  });

  test('task ids map to job ids', () => {
    expect(jobIdOf('e:9f2c')).toBe('9f2c');
    expect(jobIdOf('r:9f2c')).toBe('9f2c');
    expect(jobIdOf('9f2c')).toBe('9f2c');
  });
});

describe('queue counts', () => {
  let server: RunningRedis;
  let redis: Redis;
  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  test('agree with BullMQ, are cached for maxAgeMs, and vanish (not go stale) when Redis cannot be read', async () => {
    const queue = new Queue('alpha', { connection: redis, prefix: 'qc' });
    await queue.addBulk([1, 2, 3].map((n) => ({ name: 'insert shop.orders', data: { n } })));
    await queue.add('later', {}, { delay: 60_000 });

    const cached = new QueueCounts({
      redis,
      prefix: 'qc',
      queues: ['alpha', 'alpha.dead'],
      maxAgeMs: 3_600_000,
      log,
    });
    const fresh = new QueueCounts({
      redis,
      prefix: 'qc',
      queues: ['alpha', 'alpha.dead'],
      maxAgeMs: 0,
      log,
    });
    const registry = createRegistry({ defaultMetrics: false });
    registerQueueMetrics(registry, fresh);

    const truth = await queue.getJobCounts('waiting', 'delayed', 'active');
    const first = await cached.get();
    expect(first.get('alpha')).toMatchObject(truth);
    expect(first.get('alpha.dead')?.waiting).toBe(0);
    expect(await sample(registry, 'changeq_queue_jobs', { queue: 'alpha', state: 'waiting' })).toBe(
      truth.waiting,
    );

    await queue.add('one more', {});
    expect((await cached.get()).get('alpha')?.waiting).toBe(truth.waiting); // cached
    expect((await fresh.get()).get('alpha')?.waiting).toBe(await queue.getWaitingCount());

    const unreachable = new Redis({
      port: await freePort(),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    unreachable.on('error', () => undefined);
    const broken = new QueueCounts({ redis: unreachable, prefix: 'qc', queues: ['alpha'], log });
    const brokenRegistry = createRegistry({ defaultMetrics: false });
    registerQueueMetrics(brokenRegistry, broken);
    await expect(broken.get()).rejects.toThrow();
    expect(await sample(brokenRegistry, 'changeq_queue_jobs')).toBeUndefined();

    await Promise.all([cached.close(), fresh.close(), broken.close(), queue.close()]);
    unreachable.disconnect();
  });

  test('worker liveness: 1 for a name whose lease is held, 0 for the others', async () => {
    const registry = createRegistry({ defaultMetrics: false });
    registerWorkerLeaseMetrics(registry, {
      redis,
      prefix: 'wl',
      workers: ['alpha', 'bravo'],
      maxAgeMs: 0,
    });
    await redis.set(workerKeys('wl', 'alpha').lease, '{"pid":1}', 'PX', 60_000);
    expect(await sample(registry, 'changeq_worker_live', { worker: 'alpha' })).toBe(1);
    expect(await sample(registry, 'changeq_worker_live', { worker: 'bravo' })).toBe(0);
    await redis.del(workerKeys('wl', 'alpha').lease);
    expect(await sample(registry, 'changeq_worker_live', { worker: 'alpha' })).toBe(0);
  });

  test('follow the names given as a function: a name added later is counted and reported', async () => {
    let names = ['alpha'];
    const counts = new QueueCounts({ redis, prefix: 'qf', queues: () => names, maxAgeMs: 0, log });
    const registry = createRegistry({ defaultMetrics: false });
    registerQueueMetrics(registry, counts);
    registerWorkerLeaseMetrics(registry, {
      redis,
      prefix: 'qf',
      workers: () => names,
      maxAgeMs: 0,
    });
    const delta = new Queue('delta', { connection: redis, prefix: 'qf' });
    await delta.add('insert shop.orders', {});
    await redis.set(workerKeys('qf', 'delta').lease, '{"pid":1}', 'PX', 60_000);
    expect(
      await sample(registry, 'changeq_queue_jobs', { queue: 'delta', state: 'waiting' }),
    ).toBeUndefined();
    expect(await sample(registry, 'changeq_worker_live', { worker: 'delta' })).toBeUndefined();

    names = ['alpha', 'delta'];
    expect(await sample(registry, 'changeq_queue_jobs', { queue: 'delta', state: 'waiting' })).toBe(
      1,
    );
    expect(await sample(registry, 'changeq_worker_live', { worker: 'delta' })).toBe(1);
    expect(await sample(registry, 'changeq_worker_live', { worker: 'alpha' })).toBe(0);
    await Promise.all([counts.close(), delta.close()]);
  });
});
