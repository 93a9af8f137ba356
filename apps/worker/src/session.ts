/**
 * One term of office: what a process does for a worker name while it holds the lease.
 *
 * 1. Recovery: the jobs left in the queue's active list belong to a dead (or stopped)
 *    predecessor. They are taken over (our token written into their locks, see
 *    bullmq-internals.ts) and submitted first, in their original fetch order, together with the
 *    dead-letter re-runs that were under way.
 * 2. Fetch loop: one `getNextJob(token, { block: false })` at a time, so the order jobs are
 *    submitted to the scheduler is exactly the order Redis moved them to active (= queue order =
 *    oplog order per document). It keeps up to `prefetch` jobs held; when the queue is empty it
 *    waits on the queue's marker (BZPOPMIN) for at most a second, and checks the lease before
 *    every fetch, so a process whose lease may have expired never fetches (session/fetch-loop.ts,
 *    session/fetch-order.ts).
 * 3. The scheduler runs the jobs (see scheduler.ts); this file is its driver: completing jobs,
 *    recording attempts (session/attempts.ts), dead letters, parking and dead-letter re-runs.
 *    The tasks it gives the scheduler are made in session/tasks.ts, and the handler calls in
 *    session/handler-call.ts.
 * 4. Housekeeping: job locks extended every lockDuration/2 (session/locks.ts); operator commands
 *    (retry/discard) polled from Redis and carried out in order; BullMQ's stalled checker runs
 *    with an unlimited maxStalledCount, and a job it puts back that we still hold is reclaimed,
 *    not run twice.
 */
import { Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  deadLetterQueueName,
  eventQueueName,
  workerKeys,
  type EventJobData,
} from '@changeq/shared';
import type { Logger } from '@changeq/shared';
import { activeJobsInFetchOrder, takeOverJobs } from './bullmq-internals.js';
import {
  docDigest,
  PARK_SCRIPT,
  parseBlockState,
  UNBLOCK_SCRIPT,
  type BlockState,
  type DeadLetterCommand,
  type DeadLetterInfo,
  type DeadLetterJobData,
} from './dead-letters.js';
import type { Dispatch } from './handlers/load.js';
import type { Lease } from './lease.js';
import { sleep } from './scheduler/backoff.js';
import type { SchedulerHooks } from './scheduler/hooks.js';
import type { HandlerFailure } from './scheduler/invoke.js';
import { OrderedScheduler, type Admission, type TaskDriver } from './scheduler/scheduler.js';
import { recordFailedAttempt } from './session/attempts.js';
import { ensureLease, type SessionContext } from './session/context.js';
import { FetchLoop } from './session/fetch-loop.js';
import { FetchOrder } from './session/fetch-order.js';
import { callHandler, storableReturnValue } from './session/handler-call.js';
import { LockExtension, reclaim } from './session/locks.js';
import { replayLineTask, replayTask, type WorkTask } from './session/tasks.js';

export interface WorkerSettings {
  concurrency: number;
  attempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  timeoutMs: number;
  deadLetter: 'block' | 'skip';
}

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
  private readonly blocked = new Map<string, BlockState>();
  private readonly stopController = new AbortController();

  // Made in `start`, with the BullMQ worker and dead-letter queue they act through.
  private worker!: Worker;
  private dlq!: Queue;
  private fetchOrder!: FetchOrder;
  private fetchLoop!: FetchLoop;
  /** Undefined until `start` makes it (`close` may follow a `start` that failed early). */
  private locks: LockExtension | undefined;

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
    this.worker.on('stalled', (jobId) => {
      if (this.fetchOrder.heldJobs.has(jobId)) void reclaim(ctx, jobId);
      else this.log.warn({ jobId }, 'BullMQ moved a stalled job back to the queue');
    });

    await this.worker.waitUntilReady();

    const blocked = await redis.hgetall(this.keys.blocked);
    for (const [doc, raw] of Object.entries(blocked)) {
      const state = parseBlockState(raw);
      if (state) this.blocked.set(doc, state);
    }
    // Dead-letter re-runs that were under way go first: their events are older than any
    // event of the same document still in the queue.
    for (const [doc, state] of this.blocked) {
      if (state.state !== 'blocked') this.scheduler.submit(replayLineTask(doc));
    }
    await this.recover();
    redis.on('reconnecting', this.onReconnecting);
    await this.worker.startStalledCheckTimer();
    locks.start();
    this.fetchLoopDone = this.fetchLoop.run();
    this.commandLoopDone = this.commandLoop();
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

  private get fetching(): boolean {
    return !this.stopController.signal.aborted;
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
  // Recovery

  private async recover(): Promise<void> {
    const { redis, lockDurationMs } = this.opts;
    const ids = await activeJobsInFetchOrder(redis, this.worker);
    if (ids.length === 0) return;
    const taken = await takeOverJobs(redis, this.worker, ids, this.token, lockDurationMs);
    const jobs = await Promise.all(taken.map((id) => Job.fromId(this.worker, id)));
    let recovered = 0;
    for (const job of jobs) {
      if (job === undefined) continue;
      this.fetchOrder.accept(job);
      recovered++;
    }
    this.log.info(
      { recovered },
      `recovered ${recovered} job(s) left active by the previous process; running them first, in their original order`,
    );
  }

  // ---------------------------------------------------------------------------------------------
  // TaskDriver

  async expand(task: WorkTask): Promise<WorkTask[] | null> {
    if (task.kind !== 'replay-line' || task.key === null) return null;
    ensureLease(this.opts.lease);
    const doc = task.key;
    const block = this.blocked.get(doc);
    if (block === undefined || block.state === 'blocked') return [];
    if (block.state === 'discard') {
      const dead = await this.dlq.getJob(block.dead);
      if (dead) await dead.remove();
      this.log.info({ doc, jobId: block.dead }, 'dead letter discarded');
    }
    const parked = await this.opts.redis.zrange(this.keys.parked(docDigest(doc)), 0, -1);
    const ids =
      block.state === 'retry' ? [block.dead, ...parked.filter((id) => id !== block.dead)] : parked;
    const jobs = await Promise.all(ids.map((id) => this.dlq.getJob(id)));
    const tasks: WorkTask[] = [];
    for (const job of jobs) {
      if (job?.id === undefined) continue;
      tasks.push(replayTask(job, doc));
    }
    if (tasks.length === 0) await this.unblockIfDone(doc);
    else
      this.log.info(
        { doc, events: tasks.length },
        `re-running ${block.state === 'retry' ? 'the dead letter and ' : ''}the events parked behind it`,
      );
    return tasks;
  }

  async admit(task: WorkTask): Promise<Admission> {
    if (task.key === null) return 'run';
    const block = this.blocked.get(task.key);
    if (task.kind === 'replay') return block?.state === 'blocked' ? 'drop' : 'run';
    if (block === undefined || this.opts.settings.deadLetter === 'skip') return 'run';
    // Our own dead letter: the process died after recording it, before finishing the job.
    if (block.dead === task.jobId) return 'drop';
    return 'park';
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
    else await this.finishReplay(task);
  }

  async deadLetter(task: WorkTask, failure: HandlerFailure, attempts: number): Promise<void> {
    ensureLease(this.opts.lease);
    const now = new Date().toISOString();
    const error =
      failure.stack === undefined
        ? { message: failure.message }
        : { message: failure.message, stack: failure.stack };
    this.log.warn(
      { jobId: task.jobId, attempts, error: failure.message, doc: task.key },
      'handler failed on every attempt; event moved to the dead-letter queue',
    );
    if (task.kind === 'replay') {
      const job = task.job!;
      const data = job.data as DeadLetterJobData;
      const info: DeadLetterInfo = {
        kind: 'dead',
        originalQueue: data.deadLetter.originalQueue,
        originalJobId: data.deadLetter.originalJobId,
        error,
        attempts,
        failedAt: now,
      };
      await job.updateData({ ...data, deadLetter: info });
      if (task.key !== null && this.blocked.has(task.key)) {
        await this.opts.redis.zrem(this.keys.parked(docDigest(task.key)), task.jobId);
        await this.setBlocked(task.key, { dead: task.jobId, state: 'blocked', since: now });
      }
      return;
    }
    const data = task.data ?? ({ v: 1, ns: '', op: '', doc: task.key, event: {} } as EventJobData);
    await this.upsertDeadLetter(task, {
      ...data,
      deadLetter: {
        kind: 'dead',
        originalQueue: this.queueName,
        originalJobId: task.jobId,
        error,
        attempts,
        failedAt: now,
      },
    });
    if (this.opts.settings.deadLetter === 'block' && task.key !== null) {
      await this.setBlocked(task.key, { dead: task.jobId, state: 'blocked', since: now });
    }
    await this.fetchOrder.finish(task, { deadLetter: { queue: this.dlqName, jobId: task.jobId } });
  }

  async park(task: WorkTask): Promise<void> {
    ensureLease(this.opts.lease);
    const doc = task.key!;
    const block = this.blocked.get(doc)!;
    const seq = Number(
      await this.opts.redis.eval(
        PARK_SCRIPT,
        2,
        this.keys.parked(docDigest(doc)),
        this.keys.parkSeq,
        task.jobId,
      ),
    );
    const data = task.data ?? ({ v: 1, ns: '', op: '', doc, event: {} } as EventJobData);
    await this.upsertDeadLetter(task, {
      ...data,
      deadLetter: {
        kind: 'parked',
        originalQueue: this.queueName,
        originalJobId: task.jobId,
        blockedBy: block.dead,
        seq,
        parkedAt: new Date().toISOString(),
      },
    });
    this.log.info(
      { jobId: task.jobId, doc, blockedBy: block.dead },
      'document is blocked by a dead letter; event parked behind it',
    );
    await this.fetchOrder.finish(task, {
      parked: { queue: this.dlqName, jobId: task.jobId, blockedBy: block.dead },
    });
  }

  async drop(task: WorkTask): Promise<void> {
    if (task.kind === 'event') {
      ensureLease(this.opts.lease);
      await this.fetchOrder.finish(task, {
        deadLetter: { queue: this.dlqName, jobId: task.jobId },
      });
    }
  }

  // ---------------------------------------------------------------------------------------------

  private async upsertDeadLetter(task: WorkTask, data: DeadLetterJobData): Promise<void> {
    const existing = await this.dlq.getJob(task.jobId);
    if (existing) {
      if (existing.data?.deadLetter?.kind !== data.deadLetter.kind) await existing.updateData(data);
      return;
    }
    await this.dlq.add(task.job?.name ?? 'event', data, { jobId: task.jobId });
  }

  private async setBlocked(doc: string, state: BlockState): Promise<void> {
    await this.opts.redis.hset(this.keys.blocked, doc, JSON.stringify(state));
    this.blocked.set(doc, state);
  }

  private async unblockIfDone(doc: string): Promise<void> {
    const done = await this.opts.redis.eval(
      UNBLOCK_SCRIPT,
      2,
      this.keys.blocked,
      this.keys.parked(docDigest(doc)),
      doc,
    );
    if (done === 1) {
      this.blocked.delete(doc);
      this.log.info({ doc }, 'document unblocked: its dead letter and parked events are done');
    }
  }

  private async finishReplay(task: WorkTask): Promise<void> {
    await task.job!.remove();
    if (task.key === null) return;
    await this.opts.redis.zrem(this.keys.parked(docDigest(task.key)), task.jobId);
    if (this.blocked.has(task.key)) await this.unblockIfDone(task.key);
  }

  // ---------------------------------------------------------------------------------------------
  // Operator commands

  private async commandLoop(): Promise<void> {
    while (this.fetching) {
      if (this.opts.lease.isValid()) {
        try {
          for (;;) {
            if (!this.fetching || !this.opts.lease.isValid()) break;
            const raw = await this.opts.redis.lindex(this.keys.commands, 0);
            if (raw === null) break;
            await this.applyCommand(raw);
            await this.opts.redis.lpop(this.keys.commands);
          }
        } catch (error) {
          this.log.debug({ err: error }, 'reading dead-letter commands failed; retrying');
        }
      }
      await sleep(this.opts.commandPollMs, this.stopController.signal);
    }
  }

  private async applyCommand(raw: string): Promise<void> {
    let command: DeadLetterCommand;
    try {
      command = JSON.parse(raw) as DeadLetterCommand;
    } catch {
      this.log.warn({ command: raw }, 'ignored an unreadable dead-letter command');
      return;
    }
    const job = await this.dlq.getJob(command.jobId);
    if (job?.id === undefined) {
      this.log.warn(
        { jobId: command.jobId, op: command.op },
        'no such dead letter (already handled?)',
      );
      return;
    }
    const data = job.data as DeadLetterJobData;
    const doc = data.doc;
    const block = doc === null ? undefined : this.blocked.get(doc);
    if (doc !== null && block !== undefined && block.dead === command.jobId) {
      if (block.state !== 'blocked') return; // a re-run of this document is already under way
      if (command.op === 'retry') await job.updateProgress(0);
      await this.setBlocked(doc, { ...block, state: command.op });
      this.log.info(
        { jobId: command.jobId, doc, op: command.op },
        `dead letter ${command.op} requested`,
      );
      this.scheduler.submitFront(replayLineTask(doc));
      return;
    }
    if (data.deadLetter?.kind === 'parked') {
      if (command.op === 'discard') {
        if (doc !== null)
          await this.opts.redis.zrem(this.keys.parked(docDigest(doc)), command.jobId);
        await job.remove();
        this.log.info({ jobId: command.jobId, doc }, 'parked event discarded');
      } else {
        this.log.warn(
          { jobId: command.jobId },
          'a parked event runs when its dead letter is retried; ignored',
        );
      }
      return;
    }
    // A dead letter that blocks nothing (dead_letter = "skip", or a namespace-wide event).
    if (command.op === 'discard') {
      await job.remove();
      this.log.info({ jobId: command.jobId, doc }, 'dead letter discarded');
      return;
    }
    await job.updateProgress(0);
    this.log.info({ jobId: command.jobId, doc }, 'dead letter retry requested');
    this.scheduler.submit(replayTask((await this.dlq.getJob(command.jobId)) ?? job, doc));
  }
}
