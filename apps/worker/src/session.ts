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
 *    every fetch, so a process whose lease may have expired never fetches.
 * 3. The scheduler runs the jobs (see scheduler.ts); this file is its driver: completing jobs,
 *    recording attempts (session/attempts.ts), dead letters, parking and dead-letter re-runs.
 *    The tasks it gives the scheduler are made in session/tasks.ts, and the handler calls in
 *    session/handler-call.ts.
 * 4. Housekeeping: job locks extended every lockDuration/2; operator commands (retry/discard)
 *    polled from Redis and carried out in order; BullMQ's stalled checker runs with an unlimited
 *    maxStalledCount, and a job it puts back that we still hold is reclaimed, not run twice.
 */
import { Job, Queue, Worker, type JobJson } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  deadLetterQueueName,
  eventQueueName,
  workerKeys,
  type EventJobData,
} from '@changeq/shared';
import type { Logger } from '@changeq/shared';
import {
  activeJobsInFetchOrder,
  finishErrorCode,
  queueKey,
  FINISH_LOCK_MISMATCH,
  FINISH_MISSING_LOCK,
  FINISH_NOT_ACTIVE,
  reclaimJob,
  takeOverJobs,
} from './bullmq-internals.js';
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
import {
  OrderedScheduler,
  StopWork,
  type Admission,
  type TaskDriver,
} from './scheduler/scheduler.js';
import { recordFailedAttempt } from './session/attempts.js';
import { callHandler, storableReturnValue } from './session/handler-call.js';
import { eventTask, replayLineTask, replayTask, type WorkTask } from './session/tasks.js';

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
  private worker!: Worker;
  private dlq!: Queue;
  readonly scheduler: OrderedScheduler<WorkTask>;

  /** Event jobs held (fetched or recovered, not finished): their locks are ours to extend. */
  private readonly held = new Map<string, Job>();
  private readonly blocked = new Map<string, BlockState>();

  private fetching = true;
  private capacityWaiter: (() => void) | undefined;
  private fetchLoopDone: Promise<void> = Promise.resolve();
  private commandLoopDone: Promise<void> = Promise.resolve();
  private lockTimer: NodeJS.Timeout | undefined;
  private readonly stopController = new AbortController();
  private fetchErrorLogged = false;
  private needsAdoption = false;
  private closed = false;
  /** Jobs received from Redis, waiting for their place in fetch order (see `drain`). */
  private readonly arrived = new Map<string, Job>();
  /** Calls that may move a job to active and whose reply has not been handled yet. */
  private inflight = 0;
  private drainScheduled = false;
  private draining = false;
  private drainAgain = false;
  private readonly onReconnecting = () => {
    this.needsAdoption = true;
    this.requestDrain();
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
    const { redis, prefix, lockDurationMs } = this.opts;
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
    this.worker.on('stalled', (jobId) => {
      if (this.held.has(jobId)) void this.reclaim(jobId);
      else this.log.warn({ jobId }, 'BullMQ moved a stalled job back to the queue');
    });
    this.dlq = new Queue(this.dlqName, { connection: redis, prefix });
    this.dlq.on('error', (error) => this.log.debug({ err: error }, 'dead-letter queue error'));
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
    this.scheduleLockExtension();
    this.fetchLoopDone = this.fetchLoop();
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

  private stopFetching(): void {
    this.fetching = false;
    this.stopController.abort();
    this.capacityWaiter?.();
    this.opts.blocking.disconnect(false);
  }

  private async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.lockTimer);
    this.opts.redis.off('reconnecting', this.onReconnecting);
    await Promise.allSettled([this.fetchLoopDone, this.commandLoopDone]);
    await Promise.allSettled([this.worker.close(true), this.dlq.close()]);
  }

  // ---------------------------------------------------------------------------------------------
  // Fetching

  private async recover(): Promise<void> {
    const { redis, lockDurationMs } = this.opts;
    const ids = await activeJobsInFetchOrder(redis, this.worker);
    if (ids.length === 0) return;
    const taken = await takeOverJobs(redis, this.worker, ids, this.token, lockDurationMs);
    const jobs = await Promise.all(taken.map((id) => Job.fromId(this.worker, id)));
    let recovered = 0;
    for (const job of jobs) {
      if (job === undefined) continue;
      this.accept(job);
      recovered++;
    }
    this.log.info(
      { recovered },
      `recovered ${recovered} job(s) left active by the previous process; running them first, in their original order`,
    );
  }

  private accept(job: Job): void {
    const id = job.id;
    if (id === undefined) return;
    if (this.held.has(id)) {
      // BullMQ's stalled checker put back a job we still hold (its lock lapsed, e.g. while Redis
      // was unreachable); fetching it wrote our token into its lock again. Never run it twice.
      this.log.warn({ jobId: id }, 'job redelivered while still held here; not running it twice');
      return;
    }
    const task = eventTask(job, id);
    this.held.set(id, job);
    this.scheduler.submit(task);
  }

  private release(jobId: string): void {
    if (jobId !== '') this.held.delete(jobId);
    const waiter = this.capacityWaiter;
    this.capacityWaiter = undefined;
    waiter?.();
  }

  /**
   * Jobs reach this process from two kinds of calls on one connection: the fetch loop's
   * `getNextJob` (in concurrent batches) and `moveToCompleted(..., fetchNext = true)` when a job
   * finishes (BullMQ moves the next waiting job to active in the same script). Their replies are
   * not trusted for order: every job received goes to `arrived`, and `drain` accepts them in the
   * order of the active list, which is the order Redis moved them in. A job in the active list
   * that is neither held nor arrived is either a reply still on its way (`inflight > 0`: wait for
   * it) or, when no fetching call is in flight, a job whose reply was lost (the connection
   * dropped): it is taken over and accepted in its place.
   */
  private room(): number {
    return this.opts.prefetch - this.held.size - this.arrived.size - this.inflight;
  }

  private arrive(job: Job): void {
    if (job.id !== undefined) this.arrived.set(job.id, job);
  }

  private requestDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = true;
    try {
      do {
        this.drainAgain = false;
        if (!this.fetching) return;
        const adopt = this.needsAdoption && this.inflight === 0;
        if (this.arrived.size === 0 && !adopt) return;
        await this.acceptInFetchOrder(adopt);
      } while (this.drainAgain);
    } catch (error) {
      this.log.debug({ err: error }, 'ordering fetched jobs failed; retrying');
      this.needsAdoption = true;
      setTimeout(() => this.requestDrain(), 200);
    } finally {
      this.draining = false;
    }
  }

  private async acceptInFetchOrder(adopt: boolean): Promise<void> {
    const { redis, lockDurationMs } = this.opts;
    const ids = await activeJobsInFetchOrder(redis, this.worker);
    const inList = new Set(ids);
    const orphans: string[] = [];
    for (const id of ids) {
      const job = this.arrived.get(id);
      if (this.held.has(id)) {
        if (job !== undefined) {
          // BullMQ's stalled checker put back a job we hold, and it was fetched again.
          this.arrived.delete(id);
          this.accept(job);
        }
        continue;
      }
      if (job !== undefined) {
        if (orphans.length > 0) break; // adopt those first, then come back
        this.arrived.delete(id);
        this.accept(job);
        continue;
      }
      if (this.inflight > 0) break; // perhaps a reply still on its way: wait for it
      // No call is in flight: nobody will deliver this one (a lost reply), and any job in the
      // active list is this lease holder's to run.
      orphans.push(id);
    }
    // Received jobs that are no longer active (removed meanwhile): nothing to order them by.
    for (const [id, job] of this.arrived) {
      if (!inList.has(id)) {
        this.arrived.delete(id);
        this.log.warn({ jobId: id }, 'a fetched job left the active list before it ran; skipped');
        void job;
      }
    }
    if (adopt && orphans.length === 0) this.needsAdoption = false;
    if (orphans.length > 0) {
      const taken = await takeOverJobs(redis, this.worker, orphans, this.token, lockDurationMs);
      const jobs = await Promise.all(taken.map((id) => Job.fromId(this.worker, id)));
      for (const job of jobs) if (job) this.accept(job);
      this.log.warn({ adopted: taken.length }, 'adopted jobs fetched while the connection dropped');
      this.drainAgain = true;
    }
    if (this.capacityWaiter && this.room() > 0) this.release('');
  }

  /**
   * Fetches in batches of up to 128 concurrent `getNextJob` calls (doubling while the queue has
   * jobs, back to 1 when it runs dry) whenever the jobs held, received and being fetched leave
   * room; finishing jobs fetches their successors too (see `finishJob`).
   */
  private async fetchLoop(): Promise<void> {
    let retryDelay = 100;
    let batch = 1;
    while (this.fetching) {
      if (!this.opts.lease.isValid() || (this.needsAdoption && this.inflight > 0)) {
        await sleep(50, this.stopController.signal);
        continue;
      }
      // Refill in batches (a quarter of the prefetch at least), not one job at a time.
      const room = this.room();
      if (room < Math.max(1, Math.min(batch, Math.floor(this.opts.prefetch / 4)))) {
        await new Promise<void>((resolve) => (this.capacityWaiter = resolve));
        continue;
      }
      const size = Math.min(room, batch);
      this.inflight += size;
      const results = await Promise.allSettled(
        Array.from({ length: size }, () =>
          this.worker.getNextJob(this.token, { block: false }).then((job) => {
            if (job !== undefined) this.arrive(job);
            return job;
          }),
        ),
      );
      this.inflight -= size;
      let received = 0;
      let failed: unknown;
      for (const result of results) {
        if (result.status === 'rejected') failed = result.reason;
        else if (result.value !== undefined) received++;
      }
      this.requestDrain();
      if (!this.fetching) break;
      if (failed !== undefined) {
        // Some calls may have moved a job whose reply was lost: adopt them before going on.
        this.needsAdoption = true;
        if (!this.fetchErrorLogged) {
          this.fetchErrorLogged = true;
          this.log.warn({ err: failed }, 'fetching jobs failed; retrying with backoff');
        }
        await sleep(retryDelay, this.stopController.signal);
        retryDelay = Math.min(retryDelay * 2, 5_000);
        continue;
      }
      retryDelay = 100;
      this.fetchErrorLogged = false;
      if (received === 0) {
        batch = 1;
        await this.waitForJobs();
      } else {
        batch = received < size ? 1 : Math.min(batch * 2, 128);
      }
    }
  }

  /** Waits (at most a second) until something is added to the queue. */
  private async waitForJobs(): Promise<void> {
    try {
      await this.opts.blocking.bzpopmin(queueKey(this.worker, 'marker'), 1);
    } catch {
      if (this.fetching) await sleep(100, this.stopController.signal);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Locks

  private scheduleLockExtension(): void {
    const every = Math.max(500, Math.floor(this.opts.lockDurationMs / 2));
    this.lockTimer = setTimeout(() => {
      void this.extendLocks().finally(() => {
        if (!this.closed) this.scheduleLockExtension();
      });
    }, every);
  }

  private async extendLocks(): Promise<void> {
    if (!this.opts.lease.isValid() || this.held.size === 0) return;
    const ids = [...this.held.keys()];
    try {
      const failed = await this.worker.extendJobLocks(
        ids,
        ids.map(() => this.token),
        this.opts.lockDurationMs,
      );
      for (const id of failed) if (this.held.has(id)) await this.reclaim(id);
    } catch (error) {
      this.log.debug({ err: error }, 'extending job locks failed; retrying');
    }
  }

  private async reclaim(jobId: string): Promise<'active' | 'moved-back' | 'gone' | 'foreign'> {
    if (!this.opts.lease.isValid()) return 'gone';
    const state = await reclaimJob(
      this.opts.redis,
      this.worker,
      jobId,
      this.token,
      this.opts.lockDurationMs,
    );
    if (state === 'moved-back') {
      this.log.warn({ jobId }, 'took back a held job that BullMQ had put back in the queue');
    }
    if (state === 'foreign') {
      // Another process locked one of our jobs: it took over, so our lease is gone.
      this.opts.lease.invalidate(`job ${jobId} is locked by another process`);
    }
    return state;
  }

  private ensureLease(): void {
    if (!this.opts.lease.isValid()) throw new StopWork('the worker lease is not held');
  }

  // ---------------------------------------------------------------------------------------------
  // TaskDriver

  async expand(task: WorkTask): Promise<WorkTask[] | null> {
    if (task.kind !== 'replay-line' || task.key === null) return null;
    this.ensureLease();
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
    this.ensureLease();
    await recordFailedAttempt(task, attempt, failure, this.log);
  }

  async complete(task: WorkTask, value: unknown): Promise<void> {
    this.ensureLease();
    if (task.kind === 'event') await this.finishJob(task, storableReturnValue(value));
    else await this.finishReplay(task);
  }

  async deadLetter(task: WorkTask, failure: HandlerFailure, attempts: number): Promise<void> {
    this.ensureLease();
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
    await this.finishJob(task, { deadLetter: { queue: this.dlqName, jobId: task.jobId } });
  }

  async park(task: WorkTask): Promise<void> {
    this.ensureLease();
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
    await this.finishJob(task, {
      parked: { queue: this.dlqName, jobId: task.jobId, blockedBy: block.dead },
    });
  }

  async drop(task: WorkTask): Promise<void> {
    if (task.kind === 'event') {
      this.ensureLease();
      await this.finishJob(task, { deadLetter: { queue: this.dlqName, jobId: task.jobId } });
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

  /** Moves an event job to completed; the job must be ours (reclaimed if its lock lapsed). */
  private async finishJob(task: WorkTask, returnValue: unknown): Promise<void> {
    const job = task.job!;
    for (let tries = 0; ; tries++) {
      // Fetch the successor in the same script while there is room (it costs no extra call).
      const fetchNext =
        this.fetching && !this.needsAdoption && this.room() > 0 && this.opts.lease.isValid();
      if (fetchNext) this.inflight++;
      try {
        const next = (await job.moveToCompleted(returnValue, this.token, fetchNext)) as
          [JobJson | null | undefined, string | undefined] | undefined;
        const [data, id] = next ?? [];
        if (data && id) this.arrive(Job.fromJSON(this.worker, data, id));
        break;
      } catch (error) {
        if (fetchNext && finishErrorCode(error) === undefined) this.needsAdoption = true;
        const code = finishErrorCode(error);
        const ownership =
          code === FINISH_MISSING_LOCK ||
          code === FINISH_NOT_ACTIVE ||
          code === FINISH_LOCK_MISMATCH;
        if (!ownership || tries > 0) throw error;
        this.ensureLease();
        const state = await this.reclaim(task.jobId);
        if (state === 'foreign')
          throw new StopWork(`job ${task.jobId} is locked by another process`);
        if (state === 'gone') {
          this.log.warn(
            { jobId: task.jobId },
            'job vanished from the queue before it could be finished',
          );
          break;
        }
      } finally {
        if (fetchNext) {
          this.inflight--;
          this.requestDrain();
        }
      }
    }
    this.release(task.jobId);
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
