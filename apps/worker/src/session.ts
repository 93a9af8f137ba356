/**
 * One term of office: what a process does for a worker name while it holds the lease.
 *
 * 1. Recovery: the jobs left in the queue's active list belong to a dead (or stopped)
 *    predecessor. They are taken over (our token written into their locks, see the store's
 *    bullmq-internals.ts) and submitted first, in their original fetch order, together with the
 *    dead-letter re-runs that were under way (session/recovery.ts).
 * 2. Fetch loop: batches of concurrent `getNextJob(token, { block: false })` calls (and the next
 *    job that finishing one moves to active). Replies may arrive in any order, so received jobs
 *    wait in a reorder buffer and are submitted to the scheduler in the order of the queue's
 *    active list, the order Redis moved them in (= queue order = oplog order per document). It
 *    keeps up to `prefetch` jobs held; when the queue is empty it
 *    waits on the queue's marker (BZPOPMIN) for at most a second, and checks the lease before
 *    every fetch, so a process whose lease may have expired never fetches (session/fetch-loop.ts,
 *    session/fetch-order.ts).
 * 3. The scheduler runs the jobs (see scheduler.ts); this file is its driver: completing jobs,
 *    recording attempts (session/attempts.ts), dead letters, parking and dead-letter re-runs
 *    (session/dead-lettering.ts, with the blocked documents in the store's DocumentBlocks). The
 *    tasks it gives the scheduler are made in session/tasks.ts, and the handler calls in
 *    session/handler-call.ts.
 * 4. Housekeeping: job locks extended every lockDuration/2 (session/locks.ts); operator commands
 *    (retry/discard) polled from Redis and carried out in order (session/commands.ts); BullMQ's
 *    stalled checker runs with an unlimited maxStalledCount, and a job it puts back that we still
 *    hold is reclaimed, not run twice.
 */
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger, WorkerSettings } from '@changeq/shared';
import {
  DocumentBlocks,
  deadLetterQueueName,
  eventQueueName,
  workerKeys,
  type Lease,
} from '@changeq/store';
import type { Dispatch } from './handlers/load.js';
import type { SchedulerHooks } from './scheduler/hooks.js';
import type { HandlerFailure } from './scheduler/invoke.js';
import { OrderedScheduler, type Admission, type TaskDriver } from './scheduler/scheduler.js';
import { recordFailedAttempt } from './session/attempts.js';
import { OperatorCommands } from './session/commands.js';
import { ensureLease, type SessionContext } from './session/context.js';
import { DeadLettering } from './session/dead-lettering.js';
import { FetchLoop } from './session/fetch-loop.js';
import { FetchOrder } from './session/fetch-order.js';
import { callHandler, storableReturnValue } from './session/handler-call.js';
import { LockExtension, reclaim } from './session/locks.js';
import { recover } from './session/recovery.js';
import type { WorkTask } from './session/tasks.js';

export interface SessionOptions {
  worker: string;
  prefix: string;
  settings: WorkerSettings;
  prefetch: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  commandPollMs: number;
  /** Shared connection (maxRetriesPerRequest: null) for BullMQ and our own commands. */
  redis: Redis;
  /** A second connection for the blocking wait on the queue's marker. */
  blocking: Redis;
  lease: Lease;
  dispatch: Dispatch;
  log: Logger;
  hooks: SchedulerHooks[];
  random?: () => number;
}

export class Session implements TaskDriver<WorkTask> {
  readonly token: string;
  private readonly opts: SessionOptions;
  private readonly log: Logger;
  private readonly queueName: string;
  private readonly dlqName: string;
  private readonly keys: ReturnType<typeof workerKeys>;
  readonly scheduler: OrderedScheduler<WorkTask>;
  private readonly blocks: DocumentBlocks;
  private readonly stopController = new AbortController();

  // Made in `start`, with the BullMQ worker and dead-letter queue they act through.
  private worker!: Worker;
  private dlq!: Queue;
  private fetchOrder!: FetchOrder;
  private fetchLoop!: FetchLoop;
  /** Undefined until `start` makes it (`close` may follow a `start` that failed early). */
  private locks: LockExtension | undefined;
  private deadLetters!: DeadLettering;
  private commands!: OperatorCommands;

  private fetchLoopDone: Promise<void> = Promise.resolve();
  private commandLoopDone: Promise<void> = Promise.resolve();
  private readonly onReconnecting = () => {
    this.fetchOrder.repliesMayBeLost();
    this.fetchOrder.requestDrain();
  };

  constructor(opts: SessionOptions) {
    this.opts = opts;
    this.token = `${opts.lease.owner}:${opts.lease.fence}`;
    this.log = opts.log;
    this.queueName = eventQueueName(opts.worker);
    this.dlqName = deadLetterQueueName(opts.worker);
    this.keys = workerKeys(opts.prefix, opts.worker);
    const s = opts.settings;
    const schedulerOptions = {
      concurrency: s.concurrency,
      attempts: s.attempts,
      backoffMs: s.backoffMs,
      maxBackoffMs: s.maxBackoffMs,
      timeoutMs: s.timeoutMs,
      hooks: opts.hooks,
      onError: (error: unknown, what: string) =>
        this.log.warn({ err: error }, `could not ${what}; retrying`),
      ...(opts.random ? { random: opts.random } : {}),
    };
    this.scheduler = new OrderedScheduler<WorkTask>(this, schedulerOptions);
    this.blocks = new DocumentBlocks(opts.redis, this.keys, this.log);
  }

  /** Recovers the predecessor's jobs and starts fetching. */
  async start(): Promise<void> {
    const { redis, prefix, lockDurationMs, lease } = this.opts;
    this.worker = new Worker(this.queueName, null, {
      connection: redis,
      prefix,
      autorun: false,
      lockDuration: lockDurationMs,
      stalledInterval: this.opts.stalledIntervalMs,
      // A job whose process died is never failed for stalling: it must run, in order.
      maxStalledCount: Number.MAX_SAFE_INTEGER,
      skipLockRenewal: true,
      name: `${this.opts.worker}@${this.token}`,
    });
    this.worker.on('error', (error) => this.log.debug({ err: error }, 'BullMQ worker error'));
    this.dlq = new Queue(this.dlqName, { connection: redis, prefix });
    this.dlq.on('error', (error) => this.log.debug({ err: error }, 'dead-letter queue error'));

    const ctx: SessionContext = {
      redis,
      worker: this.worker,
      token: this.token,
      lease,
      lockDurationMs,
      log: this.log,
      stopSignal: this.stopController.signal,
    };
    this.fetchOrder = new FetchOrder(ctx, this.scheduler, this.opts.prefetch);
    this.fetchLoop = new FetchLoop(ctx, this.fetchOrder, this.opts.blocking);
    const locks = new LockExtension(ctx, this.fetchOrder.heldJobs);
    this.locks = locks;
    this.deadLetters = new DeadLettering({
      queueName: this.queueName,
      dlqName: this.dlqName,
      dlq: this.dlq,
      policy: this.opts.settings.deadLetter,
      blocks: this.blocks,
      order: this.fetchOrder,
      lease,
      log: this.log,
    });
    this.commands = new OperatorCommands(ctx, {
      key: this.keys.commands,
      pollMs: this.opts.commandPollMs,
      dlq: this.dlq,
      blocks: this.blocks,
      scheduler: this.scheduler,
    });
    this.worker.on('stalled', (jobId) => {
      if (this.fetchOrder.heldJobs.has(jobId)) void reclaim(ctx, jobId);
      else this.log.warn({ jobId }, 'BullMQ moved a stalled job back to the queue');
    });

    await this.worker.waitUntilReady();
    await this.blocks.load();
    await recover(ctx, this.blocks, this.scheduler, this.fetchOrder);
    redis.on('reconnecting', this.onReconnecting);
    await this.worker.startStalledCheckTimer();
    locks.start();
    this.fetchLoopDone = this.fetchLoop.run();
    this.commandLoopDone = this.commands.run();
  }

  /** Graceful: stop fetching, let handler calls finish for up to `graceMs`, abort the rest. */
  async stop(graceMs: number): Promise<{ drained: boolean }> {
    this.stopFetching();
    const result = await this.scheduler.stop(graceMs);
    await this.close();
    return result;
  }

  /** The lease is lost: stop everything at once, persist nothing more. */
  async halt(reason: string): Promise<void> {
    this.stopFetching();
    this.scheduler.halt(new Error(reason));
    await this.scheduler.waitIdle(5_000);
    await this.close();
  }

  private stopFetching(): void {
    this.stopController.abort(); // also wakes a fetch loop waiting for room (see FetchOrder)
    this.opts.blocking.disconnect(false);
  }

  private async close(): Promise<void> {
    this.locks?.stop();
    this.opts.redis.off('reconnecting', this.onReconnecting);
    await Promise.allSettled([this.fetchLoopDone, this.commandLoopDone]);
    await Promise.allSettled([this.worker.close(true), this.dlq.close()]);
  }

  // ---------------------------------------------------------------------------------------------
  // TaskDriver

  async expand(task: WorkTask): Promise<WorkTask[] | null> {
    return this.deadLetters.expand(task);
  }

  async admit(task: WorkTask): Promise<Admission> {
    return this.deadLetters.admit(task);
  }

  call(task: WorkTask, attempt: number, getSignal: () => AbortSignal): unknown {
    return callHandler(this.opts, task, attempt, getSignal);
  }

  async attemptFailed(task: WorkTask, attempt: number, failure: HandlerFailure): Promise<void> {
    ensureLease(this.opts.lease);
    await recordFailedAttempt(task, attempt, failure, this.log);
  }

  async complete(task: WorkTask, value: unknown): Promise<void> {
    ensureLease(this.opts.lease);
    if (task.kind === 'event') await this.fetchOrder.finish(task, storableReturnValue(value));
    else await this.deadLetters.finishReplay(task);
  }

  async deadLetter(task: WorkTask, failure: HandlerFailure, attempts: number): Promise<void> {
    await this.deadLetters.deadLetter(task, failure, attempts);
  }

  async park(task: WorkTask): Promise<void> {
    await this.deadLetters.park(task);
  }

  async drop(task: WorkTask): Promise<void> {
    await this.deadLetters.drop(task);
  }
}
