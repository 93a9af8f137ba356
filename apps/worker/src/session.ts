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
 * 3. The scheduler runs the jobs (see scheduler.ts); this file is its driver. What becomes of a
 *    task is decided by the scheduler and the dead-letter policy (session/dead-letter-policy.ts:
 *    run, park or drop; what a dead letter blocks) and written by one outcome writer
 *    (session/outcome-writer.ts), which also hands the job fetched with a finished one to the
 *    fetch order. The tasks are made in session/tasks.ts, the handler calls in
 *    session/handler-call.ts, and a document's dead-letter re-runs are read in
 *    session/replay-lines.ts (the blocked documents live in the store's DocumentBlocks).
 * 4. Housekeeping: job locks extended every lockDuration/2 (session/locks.ts); operator commands
 *    (retry/discard) polled from Redis and carried out in order (session/commands.ts); BullMQ's
 *    stalled checker runs with an unlimited maxStalledCount, and a job it puts back that we still
 *    hold is reclaimed, not run twice.
 */
import { setMaxListeners } from 'node:events';
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Tracer } from '@changeq/observability';
import type { Logger, WorkerSettings } from '@changeq/shared';
import {
  DocumentBlocks,
  PauseWatch,
  RingStore,
  deadLetterQueueName,
  eventQueueName,
  watchMovesToActive,
  workerKeys,
  type Lease,
} from '@changeq/store';
import type { Dispatch } from './handlers/load.js';
import type { WorkerEvents, WorkerHooks } from './hooks.js';
import type { HandlerFailure } from './scheduler/invoke.js';
import {
  OrderedScheduler,
  StopWork,
  type Admission,
  type TaskDriver,
} from './scheduler/scheduler.js';
import { OperatorCommands } from './session/commands.js';
import { redisFailed, type SessionContext } from './session/context.js';
import { DeadLetterPolicy } from './session/dead-letter-policy.js';
import { FetchLoop } from './session/fetch-loop.js';
import { FetchOrder } from './session/fetch-order.js';
import { Holds } from './session/holds.js';
import { MembershipWatch, type Membership } from './session/membership.js';
import { callHandler } from './session/handler-call.js';
import { LockExtension } from './session/locks.js';
import { OutcomeWriter } from './session/outcome-writer.js';
import { WorkerPause } from './session/pause.js';
import { tracedCall } from './session/tracing.js';
import { recover } from './session/recovery.js';
import { ReplayLines } from './session/replay-lines.js';
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
  hooks: WorkerHooks[];
  /** The worker's own hooks of `hooks`, combined (see hooks.ts). */
  events: WorkerEvents;
  random?: () => number;
  /** With OTEL_* set: spans for the wait in the queue and every handler call. */
  tracer?: Tracer;
}

export class Session implements TaskDriver<WorkTask> {
  readonly token: string;
  private readonly opts: SessionOptions;
  private readonly log: Logger;
  private readonly events: WorkerEvents;
  private readonly queueName: string;
  private readonly dlqName: string;
  private readonly keys: ReturnType<typeof workerKeys>;
  readonly scheduler: OrderedScheduler<WorkTask>;
  private readonly blocks: DocumentBlocks;
  private readonly policy: DeadLetterPolicy;
  private readonly ring: RingStore;
  /** Jobs of documents that moved here, waiting for their old owners' checkpoints. */
  readonly holds: Holds;
  private readonly stopController = new AbortController();
  /** Aborted when the lease lapses by this process's own clock (see leaseHolds). */
  private readonly leaseLapsed = new AbortController();

  // Made in `start`, with the BullMQ worker and dead-letter queue they act through.
  private worker!: Worker;
  private dlq!: Queue;
  /** The worker's own queue, for its counts (draining). */
  private queue!: Queue;
  private fetchOrder!: FetchOrder;
  /** The fetch order's own connection for reading the active list (see FetchOrder). */
  private ordering: Redis | undefined;
  /** Stops reporting the jobs moved to active to the fetch order (see `start`). */
  private unwatchMoves: (() => void) | undefined;
  private fetchLoop!: FetchLoop;
  /** Undefined until `start` makes it (`close` may follow a `start` that failed early). */
  private locks: LockExtension | undefined;
  private writer!: OutcomeWriter;
  private replays!: ReplayLines;
  private commands!: OperatorCommands;
  private pause: WorkerPause | undefined;

  private membership: MembershipWatch | undefined;
  private membershipDone: Promise<void> = Promise.resolve();
  private fetchLoopDone: Promise<void> = Promise.resolve();
  private commandLoopDone: Promise<void> = Promise.resolve();
  private pauseLoopDone: Promise<void> = Promise.resolve();
  private readonly onReconnecting = () => {
    this.fetchOrder.repliesMayBeLost();
    this.fetchOrder.requestDrain();
  };

  constructor(opts: SessionOptions) {
    this.opts = opts;
    this.token = `${opts.lease.owner}:${opts.lease.fence}`;
    this.log = opts.log;
    this.events = opts.events;
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
      onError: (error: unknown, what: string) => {
        this.log.warn({ err: error }, `could not ${what}; retrying`);
        // A hook that threw is no Redis failure; expanding a re-run line carries out a command.
        if (what === 'hook') return;
        const reports = { log: this.log, events: this.events };
        redisFailed(reports, what === 'expand' ? 'commands' : 'outcome', error);
      },
      ...(opts.random ? { random: opts.random } : {}),
    };
    this.scheduler = new OrderedScheduler<WorkTask>(this, schedulerOptions);
    this.blocks = new DocumentBlocks(opts.redis, this.keys, this.log);
    this.policy = new DeadLetterPolicy(s.deadLetter, this.blocks);
    this.ring = new RingStore(opts.redis, opts.prefix);
    // Every held job listens to the stop signal while it waits (many at once after key changes).
    setMaxListeners(0, this.stopController.signal);
    this.holds = new Holds(this.ring, {
      onError: (error) => {
        this.log.warn({ err: error }, 'could not read the handoff flags; retrying');
        redisFailed({ log: this.log, events: this.events }, 'outcome', error);
      },
      onWaiting: (waiting, releasedMs) => this.events.held({ waiting, releasedMs }),
      onPassed: (handoff, heldMs) => {
        const sorted = [...heldMs].sort((a, b) => a - b);
        const at = (q: number) =>
          Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
        // A routing key's change (`worker@key-…`) is per document: debug, not info.
        this.log[handoff.includes('@key-') ? 'debug' : 'info'](
          { handoff, held: heldMs.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) },
          'handoff passed: the documents that moved here run now',
        );
      },
    });
  }

  /** How many jobs of the queue this session holds (fetched or recovered, not finished). */
  get jobsHeld(): number {
    return this.fetchOrder?.heldJobs.size ?? 0;
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
    this.queue = new Queue(this.queueName, { connection: redis, prefix });
    this.queue.on('error', (error) => this.log.debug({ err: error }, 'queue error'));

    const ctx: SessionContext = {
      redis,
      worker: this.worker,
      token: this.token,
      lease,
      lockDurationMs,
      log: this.log,
      stopSignal: this.stopController.signal,
      events: this.events,
      paused: () => this.pause?.paused === true,
    };
    this.ordering = redis.duplicate();
    this.ordering.on('error', () => undefined); // the shared connection reports outages
    const fetchOrder = new FetchOrder(ctx, this.scheduler, this.opts.prefetch, this.ordering);
    this.fetchOrder = fetchOrder;
    // The order of the replies tells the fetch order (see FetchOrder); not on a Redis Cluster.
    this.unwatchMoves = watchMovesToActive(redis, this.worker, (id) =>
      fetchOrder.movedToActive(id),
    );
    if (this.unwatchMoves !== undefined) fetchOrder.followReplies();
    this.fetchLoop = new FetchLoop(ctx, this.fetchOrder, this.opts.blocking);
    const locks = new LockExtension(ctx, this.fetchOrder.heldJobs);
    this.locks = locks;
    this.writer = new OutcomeWriter(ctx, {
      queueName: this.queueName,
      dlqName: this.dlqName,
      dlq: this.dlq,
      blocks: this.blocks,
      intake: this.fetchOrder,
    });
    this.replays = new ReplayLines({ dlq: this.dlq, blocks: this.blocks, lease, log: this.log });
    this.commands = new OperatorCommands(ctx, {
      key: this.keys.commands,
      pollMs: this.opts.commandPollMs,
      dlq: this.dlq,
      blocks: this.blocks,
      scheduler: this.scheduler,
    });
    this.worker.on('stalled', (jobId) => locks.stalled(jobId));
    const target = { kind: 'worker', name: this.opts.worker } as const;
    const watch = new PauseWatch(redis, prefix, target, this.opts.commandPollMs);
    this.pause = new WorkerPause(ctx, watch, this.scheduler);

    await this.worker.waitUntilReady();
    await this.blocks.load();
    // A paused worker takes its predecessor's jobs over (they stay held) but starts none.
    await this.pause.check();
    await recover(ctx, this.blocks, this.scheduler, this.fetchOrder);
    redis.on('reconnecting', this.onReconnecting);
    await this.worker.startStalledCheckTimer();
    locks.start();
    this.fetchLoopDone = this.fetchLoop.run();
    this.commandLoopDone = this.commands.run();
    this.pauseLoopDone = this.pause.run();
    this.membership = new MembershipWatch({
      worker: this.opts.worker,
      ring: this.ring,
      queue: this.queue,
      held: () => this.scheduler.size,
      log: this.log,
      signal: this.stopController.signal,
    });
    this.membershipDone = this.membership.run();
  }

  /** Whether this name is in the ring, draining out of it, or drained (safe to stop). */
  get ringMembership(): Membership {
    return this.membership?.state ?? 'active';
  }

  /** Graceful: stop fetching, let handler calls finish for up to `graceMs`, abort the rest. */
  async stop(graceMs: number): Promise<{ drained: boolean }> {
    this.stopFetching();
    const result = await this.scheduler.stop(graceMs);
    await this.close();
    // Nothing answers for this name any more (a successor writes its own report).
    if (this.opts.lease.isValid()) await this.pause?.clear().catch(() => undefined);
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
    this.holds.close();
    this.stopController.abort(); // also wakes a fetch loop waiting for room (see FetchOrder)
    this.opts.blocking.disconnect(false);
  }

  private async close(): Promise<void> {
    this.locks?.stop();
    this.opts.redis.off('reconnecting', this.onReconnecting);
    this.unwatchMoves?.();
    await Promise.allSettled([
      this.fetchLoopDone,
      this.commandLoopDone,
      this.pauseLoopDone,
      this.membershipDone,
    ]);
    await Promise.allSettled([this.worker.close(true), this.dlq.close(), this.queue?.close()]);
    this.ordering?.disconnect();
  }

  // ---------------------------------------------------------------------------------------------
  // TaskDriver: the dead-letter policy decides, the outcome writer writes.

  async expand(task: WorkTask): Promise<WorkTask[] | null> {
    return this.replays.expand(task);
  }

  admit(task: WorkTask): Admission | Promise<Admission> {
    const data = task.kind === 'event' ? task.data : undefined;
    const waits =
      (task.kind === 'event' && task.handoff !== undefined && task.checkpoint !== true) ||
      data?.hold !== undefined ||
      (data?.after !== undefined && data.after.length > 0);
    // Most events wait for nothing: decided at once, without a promise.
    return waits ? this.admitAfterHandoffs(task) : this.policy.admit(task);
  }

  private async admitAfterHandoffs(task: WorkTask): Promise<Admission> {
    if (task.kind === 'event' && task.handoff !== undefined && task.checkpoint !== true) {
      // A routing key change's marker at the head of the old key's line: every earlier event of
      // that line finished (completed, dead-lettered or parked), so the moved document may run.
      await this.ring.markHandoff(this.opts.worker, task.handoff);
      return 'drop';
    }
    const data = task.kind === 'event' ? task.data : undefined;
    // A ring change's hold, then a routing key change's (the old key's line finished).
    for (const hold of [data?.hold, ...(data?.after ?? [])]) {
      if (hold && !(await this.holds.wait(hold, this.stopController.signal))) return 'leave';
    }
    return this.policy.admit(task);
  }

  /** A handoff marker: every job this queue held before the ring change has finished. */
  async checkpoint(task: WorkTask): Promise<void> {
    if (task.kind !== 'event' || task.handoff === undefined) return;
    await this.ring.markHandoff(this.opts.worker, task.handoff);
    await this.writer.write(task, { kind: 'completed', returnValue: null });
    if (typeof task.handoff === 'string') {
      // A routing key's change: one per moved document, too many for the info level.
      this.log.debug({ handoff: task.handoff }, 'routing key handoff marker reached');
      return;
    }
    this.log.info(
      { epoch: task.handoff },
      'handoff marker reached: every job queued here before the ring change has finished',
    );
  }

  call(task: WorkTask, attempt: number, getSignal: () => AbortSignal): unknown {
    if (!this.leaseHolds()) throw new StopWork('the worker lease lapsed');
    let signal: AbortSignal | undefined;
    const call = () =>
      callHandler(this.opts, task, attempt, () => {
        this.leaseHolds();
        signal ??= AbortSignal.any([getSignal(), this.leaseLapsed.signal]);
        return signal;
      });
    if (this.opts.tracer === undefined || task.kind === 'replay-line') return call();
    return tracedCall(this.opts.tracer, this.opts.worker, task, attempt, call);
  }

  /**
   * Whether the lease holds by this process's own clock. A process that was paused past its
   * lease (SIGSTOP, a stalled VM, a long GC) wakes up with its handlers' timers due before the
   * lease's own expiry timer: asked here, before each handler call and whenever a handler reads
   * `ctx.signal`, the clock says so first. The signals of the calls under way abort at once.
   */
  private leaseHolds(): boolean {
    if (this.opts.lease.isValid()) return true;
    if (!this.leaseLapsed.signal.aborted) {
      const reason = "the lease lapsed by this process's clock (it was paused or starved)";
      this.leaseLapsed.abort(new Error(reason));
      this.opts.lease.invalidate(reason);
    }
    return false;
  }

  async attemptFailed(task: WorkTask, attempt: number, failure: HandlerFailure): Promise<void> {
    await this.writer.attemptFailed(task, attempt, failure);
  }

  complete(task: WorkTask, value: unknown): Promise<void> {
    return this.writer.write(task, { kind: 'completed', returnValue: value });
  }

  async deadLetter(task: WorkTask, failure: HandlerFailure, attempts: number): Promise<void> {
    await this.writer.write(task, this.policy.deadLettered(task, failure, attempts));
  }

  async park(task: WorkTask): Promise<void> {
    await this.writer.write(task, this.policy.parked(task));
  }

  async drop(task: WorkTask): Promise<void> {
    await this.writer.write(task, { kind: 'dropped' });
  }
}
