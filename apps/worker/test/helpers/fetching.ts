/**
 * What the fetch tests share: a queue and BullMQ's processor-less `Worker` on a Redis of the file's
 * own, the connections a session fetches with, and a session context whose scheduler records the
 * tasks it is given.
 */
import { afterAll, beforeAll } from 'vitest';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import type { Logger } from '@changeq/shared';
import type { Lease } from '@changeq/store';
import { workerEvents } from '../../src/hooks.js';
import type { OrderedScheduler } from '../../src/scheduler/scheduler.js';
import type { SessionContext } from '../../src/session/context.js';
import type { WorkTask } from '../../src/session/tasks.js';

export interface Fetching {
  /** The shared connection (BullMQ's and the session's). */
  readonly redis: Redis;
  /** The fetch order's own connection for reading the active list. */
  readonly ordering: Redis;
  /** The marker wait's connection. */
  readonly blocking: Redis;
  readonly queue: Queue;
  readonly worker: Worker;
}

export function fetchingForFile(): Fetching {
  let server: RunningRedis | undefined;
  const parts: Partial<Record<keyof Fetching, unknown>> = {};
  beforeAll(async () => {
    server = await startRedis();
    const connect = () => new Redis(server!.url, { maxRetriesPerRequest: null });
    const redis = connect();
    Object.assign(parts, {
      redis,
      ordering: connect(),
      blocking: connect(),
      queue: new Queue('alpha', { connection: redis, prefix: 'changeq' }),
      worker: new Worker('alpha', null, { connection: redis, prefix: 'changeq', autorun: false }),
    });
    await (parts.worker as Worker).waitUntilReady();
  });
  afterAll(async () => {
    await (parts.worker as Worker | undefined)?.close(true);
    await (parts.queue as Queue | undefined)?.close();
    (parts.ordering as Redis | undefined)?.disconnect();
    (parts.blocking as Redis | undefined)?.disconnect();
    await (parts.redis as Redis | undefined)?.quit();
    await server?.stop();
  });
  const get =
    <K extends keyof Fetching>(key: K) =>
    () => {
      const part = parts[key];
      if (part === undefined) throw new Error(`${key} is made before the file's first test`);
      return part as Fetching[K];
    };
  return Object.defineProperties({} as Fetching, {
    redis: { get: get('redis') },
    ordering: { get: get('ordering') },
    blocking: { get: get('blocking') },
    queue: { get: get('queue') },
    worker: { get: get('worker') },
  });
}

/** A session context over `fetching`, and a scheduler that records the ids it is given. */
export function recordingSession(
  fetching: Fetching,
  stopSignal: AbortSignal = new AbortController().signal,
): {
  ctx: SessionContext;
  scheduler: OrderedScheduler<WorkTask>;
  submitted: string[];
  warnings: string[];
} {
  const warnings: string[] = [];
  const log = {
    warn: (_fields: unknown, message: string) => warnings.push(message),
    info: () => undefined,
    debug: () => undefined,
    error: () => undefined,
  } as unknown as Logger;
  const submitted: string[] = [];
  const scheduler = {
    submit: (task: WorkTask) => submitted.push(task.id),
  } as unknown as OrderedScheduler<WorkTask>;
  const ctx: SessionContext = {
    redis: fetching.redis,
    worker: fetching.worker,
    token: 'owner:1',
    lease: { isValid: () => true } as unknown as Lease,
    lockDurationMs: 30_000,
    log,
    stopSignal,
    events: workerEvents([], () => undefined),
  };
  return { ctx, scheduler, submitted, warnings };
}
