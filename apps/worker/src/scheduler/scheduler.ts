/**
 * The in-process ordered scheduler: runs the jobs one worker process holds so that
 *
 * - jobs with the same key (document identity) run strictly one after another, in the order
 *   they were submitted (= the order they were fetched = oplog order), each one only after the
 *   previous one's result is persisted (so a crash can never let a later event finish before an
 *   earlier one is recorded);
 * - jobs with different keys run in parallel, at most `concurrency` handler calls at once;
 *   a free slot goes to the oldest job that is ready;
 * - a job with key `null` (a namespace-wide event: drop, rename, dropDatabase) is a barrier: it
 *   runs after every job submitted before it is finished, and jobs submitted after it wait for it;
 * - a checkpoint task (`checkpoint: true`, a ring change's handoff marker) is done when every
 *   task submitted before it is finished (completed, dead-lettered, parked or dropped); unlike a
 *   barrier it holds nothing back: tasks submitted after it run as if it were not there;
 * - a failed handler call is retried in place with capped exponential backoff and full jitter:
 *   the job stays at the head of its document's line (later events of the document wait), the
 *   backoff holds no handler slot (other documents go on), and after the last attempt the job is
 *   dead-lettered.
 *
 * It knows nothing about Redis or BullMQ: a `TaskDriver` persists the outcomes. Driver calls
 * that fail (Redis unreachable) are retried until they succeed or the scheduler is halted, so a
 * document's line never advances past an unpersisted result.
 */
import { setMaxListeners } from 'node:events';
import { SlotMap, backoffDelay, sleep } from '@changeq/shared';
import { combineHooks, type HookJob, type SchedulerHooks } from './hooks.js';
import { invokeWithTimeout, StopSource, type HandlerFailure } from './invoke.js';

export interface SchedulerTask {
  /** Unique among the tasks held at once: a second task with a held id is refused. */
  id: string;
  /** Document identity; `null` makes the task a barrier. */
  key: string | null;
  source: 'event' | 'replay';
  /** Attempts already made (persisted with the job), so counting goes on after a restart. */
  priorAttempts: number;
  /** The failure of the last of those attempts. */
  lastFailure?: HandlerFailure | undefined;
  /** Ask the driver's `expand` when it is next in line (dead-letter re-runs). */
  expandable?: boolean;
  /** A checkpoint: the driver's `checkpoint` runs once every task submitted before it finished. */
  checkpoint?: boolean;
}

/**
 * What to do with a task that is next in line: run its handler, park it, finish it as is, or
 * leave it unfinished (the process is stopping while the task waited to be admitted: its job
 * stays active for the next process).
 */
export type Admission = 'run' | 'park' | 'drop' | 'leave';

/** Thrown by a driver when the process may no longer act on jobs (lost lease): stop quietly. */
export class StopWork extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'StopWork';
  }
}

/**
 * A hook's argument: the job, then what the hook adds. Built field by field, not with an object
 * spread (`{ ...job, attempt }`): a spread here made V8 promote every task's objects (measured
 * in apps/worker/test/gc-retention.test.ts), an explicit copy does not.
 */
function hookEvent<X extends object>(job: HookJob, extra: X): HookJob & X {
  return Object.assign({ jobId: job.jobId, doc: job.doc, source: job.source }, extra);
}

export interface TaskDriver<T extends SchedulerTask> {
  /**
   * Called when a task is next in line, before `admit`. Returning a list replaces the task by
   * those tasks, in that order, at its place (a dead-letter replay expands into its events).
   */
  expand?(task: T): Promise<T[] | null>;
  /** May answer at once (no promise): the common case costs no microtask then. */
  admit(task: T): Admission | Promise<Admission>;
  /**
   * The handler call itself. The scheduler adds the time limit; `getSignal` returns the call's
   * abort signal (made on first use). Throwing StopWork (before the handler starts) halts the
   * scheduler: the process may no longer act on jobs, and the attempt does not count.
   */
  call(task: T, attempt: number, getSignal: () => AbortSignal): unknown;
  /** Persists a failed attempt that will be retried. */
  attemptFailed(task: T, attempt: number, failure: HandlerFailure): Promise<void>;
  complete(task: T, value: unknown, attempt: number): Promise<void>;
  deadLetter(task: T, failure: HandlerFailure, attempts: number): Promise<void>;
  park(task: T): Promise<void>;
  /** Finishes a task admitted as 'drop' without running it. */
  drop(task: T): Promise<void>;
  /** Finishes a checkpoint task: everything submitted before it is finished. */
  checkpoint?(task: T): Promise<void>;
}

export interface SchedulerOptions {
  concurrency: number;
  attempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  timeoutMs: number;
  hooks?: SchedulerHooks | readonly SchedulerHooks[];
  /** Randomness of the backoff jitter (tests pass a seeded generator). */
  random?: () => number;
  /** First delay before a failed driver call is retried (doubles up to 5 s). */
  persistRetryMs?: number;
  /** A driver call failed and will be retried; a hook threw. */
  onError?: (error: unknown, what: string) => void;
}

interface Entry<T extends SchedulerTask> {
  task: T;
  seq: number;
  started: boolean;
  /** Barriers and checkpoints: how many held tasks ordered before it are not finished yet. */
  before: number;
}

type State = 'accepting' | 'draining' | 'halted';

export class OrderedScheduler<T extends SchedulerTask> {
  private readonly driver: TaskDriver<T>;
  private readonly opts: Required<Omit<SchedulerOptions, 'hooks' | 'random' | 'onError'>>;
  private readonly random: () => number;
  private readonly hooks: Required<SchedulerHooks>;
  /** No hooks at all: skip building their arguments. */
  private readonly quiet: boolean;
  private readonly stopSource = new StopSource();
  private readonly onError: (error: unknown, what: string) => void;

  private seqCounter = 0;
  // SlotMaps, not Maps: a long-lived Map's replaced hash tables kept finished entries reachable
  // and made V8 promote every task's objects (see SlotMap).
  private readonly held = new SlotMap<string, Entry<T>>();
  private readonly lines = new SlotMap<string, Entry<T>[]>();
  private readonly barriers: Entry<T>[] = [];
  private readonly checkpoints: Entry<T>[] = [];

  private running = 0;
  /** Paused by the operator: no handler call starts (slots are granted again on resume). */
  private paused = false;
  private backingOff = 0;
  private readonly slotWaiters: { seq: number; grant: (ok: boolean) => void }[] = [];

  private state: State = 'accepting';
  private readonly drainController = new AbortController();
  private readonly haltController = new AbortController();
  private works = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(driver: TaskDriver<T>, options: SchedulerOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new RangeError('concurrency must be a positive integer');
    }
    this.driver = driver;
    this.opts = {
      concurrency: options.concurrency,
      attempts: Math.max(1, options.attempts),
      backoffMs: options.backoffMs,
      maxBackoffMs: options.maxBackoffMs,
      timeoutMs: options.timeoutMs,
      persistRetryMs: options.persistRetryMs ?? 200,
    };
    this.random = options.random ?? Math.random;
    this.onError = options.onError ?? (() => undefined);
    const list = options.hooks === undefined ? [] : [options.hooks].flat();
    this.hooks = combineHooks(list, (error) => this.onError(error, 'hook'));
    this.quiet = list.length === 0;
    // Every handler call and every backoff listens to these: one listener per job held.
    setMaxListeners(0, this.drainController.signal, this.haltController.signal);
  }

  /** How many tasks are held (submitted and not finished). */
  get size(): number {
    return this.held.size;
  }

  get activeCalls(): number {
    return this.running;
  }

  /**
   * `changeq pause --worker`: the handler calls under way finish, no call starts (first
   * attempts and retries alike) until `resume`; the tasks stay held, in their order.
   */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.grantWaiters();
  }

  has(id: string): boolean {
    return this.held.has(id);
  }

  get accepting(): boolean {
    return this.state === 'accepting';
  }

  /** Fires when the scheduler is halted: handlers still running get it through `ctx.signal`. */
  get haltSignal(): AbortSignal {
    return this.haltController.signal;
  }

  /**
   * Adds a task behind everything submitted so far. Returns false (and ignores it) when a task
   * with the same id is already held: a redelivered job must never run twice at once.
   */
  submit(task: T): boolean {
    if (this.held.has(task.id)) return false;
    const entry: Entry<T> = { task, seq: ++this.seqCounter, started: false, before: 0 };
    this.held.set(task.id, entry);
    if (task.checkpoint === true) {
      entry.before = this.held.size - 1;
      this.checkpoints.push(entry);
    } else if (task.key === null) {
      entry.before = this.held.size - 1;
      this.barriers.push(entry);
    } else {
      const line = this.lines.get(task.key);
      if (line === undefined) this.lines.set(task.key, [entry]);
      else line.push(entry);
    }
    if (!this.quiet) {
      this.hooks.jobQueued(this.hookJob(task));
      this.report();
    }
    this.tryStart(entry);
    return true;
  }

  /**
   * Adds a task at the front of its document's line: after the task running now (if any) and
   * before every task of that document still waiting. For barriers it counts as ordered where
   * the first waiting task of the line is (it must not jump a barrier that one has to wait for).
   */
  submitFront(task: T): boolean {
    if (task.key === null || task.checkpoint === true) return this.submit(task);
    if (this.held.has(task.id)) return false;
    const line = this.lines.get(task.key);
    const index = line === undefined ? 0 : line[0]?.started ? 1 : 0;
    const behind = line?.[index];
    if (line === undefined || behind === undefined) return this.submit(task);
    const entry: Entry<T> = { task, seq: behind.seq, started: false, before: 0 };
    this.held.set(task.id, entry);
    line.splice(index, 0, entry);
    for (const waiter of this.waitersOnAll()) if (waiter.seq > entry.seq) waiter.before++;
    if (!this.quiet) {
      this.hooks.jobQueued(this.hookJob(task));
      this.report();
    }
    this.tryStart(entry);
    return true;
  }

  /**
   * Graceful stop: no handler call starts any more; calls in progress may finish (and their
   * results are persisted) for up to `graceMs`; then the rest is aborted through `ctx.signal`.
   * Tasks that did not finish stay unfinished (their jobs stay active for the next process).
   */
  async stop(graceMs: number): Promise<{ drained: boolean }> {
    if (this.state === 'accepting') {
      this.state = 'draining';
      this.drainController.abort();
      this.denyWaiters();
    }
    const drained = await this.waitIdle(graceMs);
    if (!drained) {
      this.halt(new Error(`worker shutting down: handlers did not finish within ${graceMs} ms`));
      await this.waitIdle(5_000);
    }
    return { drained };
  }

  /** Stops at once: aborts handlers, persists nothing more (the lease is lost). */
  halt(reason: unknown = new Error('worker stopped')): void {
    if (this.state === 'halted') return;
    this.state = 'halted';
    this.drainController.abort();
    this.haltController.abort(reason);
    this.stopSource.stop(reason);
    this.denyWaiters();
  }

  /** Resolves true when no task is being worked on, or false after `timeoutMs`. */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.works === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      this.idleWaiters.push(done);
    });
  }

  // ---------------------------------------------------------------------------------------------

  private isHalted(): boolean {
    return this.state === 'halted';
  }

  private hookJob(task: T): HookJob {
    return { jobId: task.id, doc: task.key, source: task.source };
  }

  private report(): void {
    if (this.quiet) return;
    this.hooks.backlog({
      held: this.held.size,
      running: this.running,
      backingOff: this.backingOff,
    });
  }

  /** The entries that wait for every task ordered before them: barriers and checkpoints. */
  private waitersOnAll(): Entry<T>[] {
    return this.checkpoints.length === 0 ? this.barriers : [...this.barriers, ...this.checkpoints];
  }

  private eligible(entry: Entry<T>): boolean {
    if (entry.started || this.state !== 'accepting') return false;
    if (entry.task.checkpoint === true) return entry.before === 0;
    if (entry.task.key === null) return this.barriers[0] === entry && entry.before === 0;
    const line = this.lines.get(entry.task.key);
    if (line?.[0] !== entry) return false;
    const barrier = this.barriers[0];
    return barrier === undefined || entry.seq < barrier.seq;
  }

  private tryStart(entry: Entry<T> | undefined): void {
    if (entry === undefined || !this.eligible(entry)) return;
    entry.started = true;
    this.works++;
    void this.work(entry).finally(() => {
      this.works--;
      if (this.works === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const waiter of waiters) waiter();
      }
    });
  }

  /** Removes a finished entry and starts whatever it was holding back. */
  private finish(entry: Entry<T>, result: 'completed' | 'dead-lettered' | 'parked' | 'dropped') {
    this.held.delete(entry.task.id);
    for (const waiter of this.waitersOnAll()) {
      if (waiter !== entry && waiter.seq > entry.seq) waiter.before--;
    }
    if (!this.quiet) this.hooks.jobDone(hookEvent(this.hookJob(entry.task), { result }));
    for (const checkpoint of this.checkpoints) this.tryStart(checkpoint);
    if (entry.task.checkpoint === true) {
      this.checkpoints.splice(this.checkpoints.indexOf(entry), 1);
      this.report();
      this.tryStart(this.barriers[0]);
      return;
    }
    if (entry.task.key === null) {
      this.barriers.shift();
      this.report();
      this.startAllReady();
      return;
    }
    const line = this.lines.get(entry.task.key);
    if (line !== undefined) {
      line.shift();
      if (line.length === 0) this.lines.delete(entry.task.key);
    }
    this.report();
    this.tryStart(line?.[0]);
    this.tryStart(this.barriers[0]);
  }

  private startAllReady(): void {
    this.tryStart(this.barriers[0]);
    for (const line of this.lines.values()) this.tryStart(line[0]);
  }

  /** Replaces a (started, head-of-line) entry by the tasks it expanded into. */
  private expandEntry(entry: Entry<T>, tasks: T[]): void {
    const key = entry.task.key;
    const line = key === null ? undefined : this.lines.get(key);
    const fresh = tasks.filter((task) => !this.held.has(task.id) && task.key === key);
    if (line === undefined || line[0] !== entry || fresh.length === 0) {
      this.finish(entry, 'dropped');
      return;
    }
    this.held.delete(entry.task.id);
    const entries = fresh.map((task) => {
      const next: Entry<T> = { task, seq: entry.seq, started: false, before: 0 };
      this.held.set(task.id, next);
      this.hooks.jobQueued(this.hookJob(task));
      return next;
    });
    line.splice(0, 1, ...entries);
    for (const waiter of this.waitersOnAll()) {
      if (waiter.seq > entry.seq) waiter.before += entries.length - 1;
    }
    this.report();
    this.tryStart(line[0]);
  }

  /**
   * The driver's admission, without a promise when it answers at once; a failed or pending one
   * goes through `persist` (retried until it succeeds or the scheduler halts).
   */
  private admit(task: T): Admission | Promise<{ value: Admission } | undefined> {
    if (this.state === 'halted') return Promise.resolve(undefined);
    let first: Admission | Promise<Admission>;
    try {
      first = this.driver.admit(task);
    } catch (error) {
      first = Promise.reject(error);
    }
    if (typeof first === 'string') return first;
    let pending: Promise<Admission> | undefined = first;
    return this.persist('admit', () => {
      const attempt = pending ?? this.driver.admit(task);
      pending = undefined;
      return Promise.resolve(attempt);
    });
  }

  /** A free slot taken at once, when nothing waits for one (no promise, no microtask). */
  private takeFreeSlot(): boolean {
    if (this.state !== 'accepting' || this.paused) return false;
    if (this.running >= this.opts.concurrency || this.slotWaiters.length > 0) return false;
    this.running++;
    return true;
  }

  /** A slot, waiting in `seq` order when none is free; false when the scheduler stopped. */
  private acquireSlot(seq: number): Promise<boolean> {
    if (this.state !== 'accepting') return Promise.resolve(false);
    if (this.takeFreeSlot()) return Promise.resolve(true);
    return new Promise((grant) => {
      let i = this.slotWaiters.length;
      while (i > 0 && (this.slotWaiters[i - 1]?.seq ?? 0) > seq) i--;
      this.slotWaiters.splice(i, 0, { seq, grant });
    });
  }

  private releaseSlot(): void {
    this.running--;
    this.grantWaiters();
  }

  private grantWaiters(): void {
    while (!this.paused && this.running < this.opts.concurrency && this.slotWaiters.length > 0) {
      const waiter = this.slotWaiters.shift();
      if (waiter === undefined) break;
      if (this.state !== 'accepting') {
        waiter.grant(false);
        continue;
      }
      this.running++;
      waiter.grant(true);
    }
  }

  private denyWaiters(): void {
    const waiters = this.slotWaiters.splice(0);
    for (const waiter of waiters) waiter.grant(false);
  }

  /** Runs a driver call until it succeeds; undefined when the scheduler halted meanwhile. */
  private async persist<R>(what: string, fn: () => Promise<R>): Promise<{ value: R } | undefined> {
    let delay = this.opts.persistRetryMs;
    for (;;) {
      if (this.state === 'halted') return undefined;
      try {
        return { value: await fn() };
      } catch (error) {
        if (error instanceof StopWork) {
          this.halt(error);
          return undefined;
        }
        if (this.isHalted()) return undefined;
        this.onError(error, what);
        await sleep(delay, this.haltController.signal);
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }

  private async work(entry: Entry<T>): Promise<void> {
    const task = entry.task;
    const job = this.hookJob(task);
    if (task.checkpoint === true) {
      const done = await this.persist('checkpoint', async () => this.driver.checkpoint?.(task));
      if (done !== undefined) this.finish(entry, 'completed');
      return;
    }
    if (this.driver.expand && task.expandable === true) {
      const expanded = await this.persist('expand', () => this.driver.expand!(task));
      if (expanded === undefined) return;
      if (expanded.value !== null) {
        this.expandEntry(entry, expanded.value);
        return;
      }
    }
    const admitted = this.admit(task);
    const admission = typeof admitted === 'string' ? { value: admitted } : await admitted;
    if (admission === undefined || admission.value === 'leave') return;
    if (admission.value === 'park') {
      if ((await this.persist('park', () => this.driver.park(task))) === undefined) return;
      this.hooks.parked(job);
      this.finish(entry, 'parked');
      return;
    }
    if (admission.value === 'drop') {
      if ((await this.persist('drop', () => this.driver.drop(task))) === undefined) return;
      this.finish(entry, 'dropped');
      return;
    }

    let attempt = task.priorAttempts;
    if (attempt >= this.opts.attempts) {
      // Recovered after a crash that came between the last attempt and the dead letter.
      const failure = task.lastFailure ?? {
        message: `all ${attempt} attempts failed before a restart`,
        kind: 'error' as const,
      };
      await this.deadLetter(entry, failure, attempt);
      return;
    }
    for (;;) {
      attempt++;
      if (!this.takeFreeSlot() && !(await this.acquireSlot(entry.seq))) return;
      if (!this.quiet) {
        this.hooks.handlerStarted(hookEvent(job, { attempt }));
        this.report();
      }
      const started = performance.now();
      let stopped: StopWork | undefined;
      const outcome = await invokeWithTimeout(
        (getSignal) => {
          try {
            return this.driver.call(task, attempt, getSignal);
          } catch (error) {
            if (error instanceof StopWork) stopped = error;
            throw error;
          }
        },
        this.opts.timeoutMs,
        this.stopSource,
      );
      this.releaseSlot();
      const durationMs = performance.now() - started;
      if (stopped !== undefined) {
        this.hooks.handlerFinished(hookEvent(job, { attempt, durationMs, outcome: 'aborted' }));
        this.halt(stopped);
        return;
      }
      if (outcome.status === 'ok') {
        if (!this.quiet)
          this.hooks.handlerFinished(hookEvent(job, { attempt, durationMs, outcome: 'ok' }));
        // Returned, not awaited: this frame is not kept for the completion's round trip.
        return this.completeTask(entry, outcome.value, attempt);
      }
      if (outcome.status === 'aborted') {
        this.hooks.handlerFinished(hookEvent(job, { attempt, durationMs, outcome: 'aborted' }));
        this.report();
        return;
      }
      const failure = outcome.failure;
      this.hooks.handlerFinished(
        hookEvent(job, { attempt, durationMs, outcome: 'failed', failure }),
      );
      if (attempt >= this.opts.attempts) {
        await this.deadLetter(entry, failure, attempt);
        return;
      }
      const delayMs = backoffDelay(
        attempt,
        this.opts.backoffMs,
        this.opts.maxBackoffMs,
        this.random,
      );
      const saved = await this.persist('record attempt', () =>
        this.driver.attemptFailed(task, attempt, failure),
      );
      if (saved === undefined || this.state !== 'accepting') {
        this.report();
        return;
      }
      this.hooks.retryScheduled(hookEvent(job, { attempt, delayMs, failure }));
      this.backingOff++;
      this.report();
      const slept = await sleep(delayMs, this.drainController.signal);
      this.backingOff--;
      this.report();
      if (!slept) return;
    }
  }

  private async completeTask(entry: Entry<T>, value: unknown, attempt: number): Promise<void> {
    const saved = await this.persist('complete', () =>
      this.driver.complete(entry.task, value, attempt),
    );
    if (saved !== undefined) this.finish(entry, 'completed');
    else this.report();
  }

  private async deadLetter(entry: Entry<T>, failure: HandlerFailure, attempts: number) {
    const saved = await this.persist('dead-letter', () =>
      this.driver.deadLetter(entry.task, failure, attempts),
    );
    if (saved === undefined) return;
    this.hooks.deadLettered(hookEvent(this.hookJob(entry.task), { attempts, failure }));
    this.finish(entry, 'dead-lettered');
  }
}
