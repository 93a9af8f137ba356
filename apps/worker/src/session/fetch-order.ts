/**
 * The jobs a session holds from the worker's queue, given to the scheduler in fetch order.
 *
 * Jobs reach this process from two kinds of calls on one connection: the fetch loop's
 * `getNextJob` (in concurrent batches) and the outcome writer's `moveToCompleted(...,
 * fetchNext = true)` when a job finishes (BullMQ moves the next waiting job to active in the
 * same script; the writer hands it over here, see `startFetchWithFinish`). The order in which
 * their jobs reach this class is not the order Redis moved them in: BullMQ's two calls hand a job
 * over after different numbers of turns. So every job received goes to `arrived`, and is
 * accepted in the order Redis moved the jobs, known one of two ways:
 *
 * - From the replies (`moved`): on one connection Redis answers in the order it ran the
 *   commands, and the session reports each moved job's id as its reply comes, before BullMQ
 *   hands the job over (@changeq/store's `watchMovesToActive`). A job received is accepted once
 *   every job moved before it was; no read of Redis, no wait for other calls.
 * - From the active list, read on a connection of its own: when a reply may have been lost (a
 *   failed call, a reconnection), when the replies cannot be watched (a Redis Cluster), or when
 *   a job came that no reply reported. A job in the active list that is neither held nor
 *   arrived is either a reply still on its way (`inflight > 0`: wait for it) or, when no fetching
 *   call is in flight, a job whose reply was lost: it is taken over and accepted in its place.
 */
import { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { SlotMap } from '@changeq/shared';
import { activeJobsInFetchOrder, newestActiveJobs, takeOverJobs } from '@changeq/store';
import type { OrderedScheduler } from '../scheduler/scheduler.js';
import { redisFailed, type SessionContext } from './context.js';
import { eventTask, type WorkTask } from './tasks.js';

/** A job received from Redis, waiting for its place in fetch order; `at`: performance.now(). */
interface Arrival {
  job: Job;
  at: number;
}

/** Jobs the calls started during a read of the list's newest may have put ahead of them. */
const NEWEST_SLACK = 32;

export class FetchOrder {
  /** Jobs held, received and being fetched at once, at most. */
  readonly prefetch: number;
  private readonly ctx: SessionContext;
  private readonly scheduler: OrderedScheduler<WorkTask>;

  /**
   * Event jobs held (fetched or recovered, not finished): their locks are ours to extend. A
   * SlotMap, as `arrived`: a Map here made V8 promote nearly every job (see SlotMap).
   */
  private readonly held = new SlotMap<string, Job>();
  /** Jobs received from Redis, waiting for their place in fetch order (see `drain`). */
  private readonly arrived = new SlotMap<string, Arrival>();
  /**
   * Whether `moved` reports the jobs moved to active (see `followReplies`), and those jobs' ids
   * in the order Redis moved them (a Set keeps its insertion order): jobs not accepted yet,
   * received or on their way.
   */
  private replies = false;
  private readonly moved = new Set<string>();
  /** How long each job accepted from `arrived` waited, since the last report (`reportWaits`). */
  private waited: number[] = [];
  /** Calls that may move a job to active and whose reply has not been handled yet. */
  private inflight = 0;
  /** Held jobs whose finishing call is under way (each may fetch its successor). */
  private readonly leaving = new Set<string>();
  private needsAdoption = false;
  /** While the active list is read: the jobs released meanwhile (see `acceptInFetchOrder`). */
  private releasedDuringRead: Set<string> | undefined;
  private capacityWaiter: (() => void) | undefined;
  private drainScheduled = false;
  private draining = false;
  private drainAgain = false;

  /**
   * Where the active list is read: a connection of its own, so that the read does not queue
   * behind the completions (Lua scripts) pipelined on the shared one, which every job received
   * while others are being fetched waits for. Any connection sees the jobs received: their moves
   * were done before their replies came.
   */
  private readonly ordering: Redis;

  constructor(
    ctx: SessionContext,
    scheduler: OrderedScheduler<WorkTask>,
    prefetch: number,
    ordering: Redis = ctx.redis,
  ) {
    this.ctx = ctx;
    this.scheduler = scheduler;
    this.prefetch = prefetch;
    this.ordering = ordering;
    // Stopping wakes a fetch loop waiting for room, so that it sees it must stop.
    ctx.stopSignal.addEventListener('abort', () => this.capacityWaiter?.(), { once: true });
  }

  get heldJobs(): ReadonlyMap<string, Job> {
    return this.held;
  }

  private get fetching(): boolean {
    return !this.ctx.stopSignal.aborted;
  }

  accept(job: Job): void {
    const id = job.id;
    if (id === undefined) return;
    if (this.held.has(id)) {
      // BullMQ's stalled checker put back a job we still hold (its lock lapsed, e.g. while Redis
      // was unreachable); fetching it wrote our token into its lock again. Never run it twice.
      this.ctx.log.warn(
        { jobId: id },
        'job redelivered while still held here; not running it twice',
      );
      return;
    }
    const task = eventTask(job, id);
    this.held.set(id, job);
    this.scheduler.submit(task);
  }

  /** A held job is finished (see OutcomeWriter): it leaves, and makes room. */
  release(jobId: string): void {
    this.releasedDuringRead?.add(jobId);
    this.held.delete(jobId);
    this.leaving.delete(jobId);
    this.wakeFetchLoop();
  }

  private wakeFetchLoop(): void {
    const waiter = this.capacityWaiter;
    this.capacityWaiter = undefined;
    waiter?.();
  }

  room(): number {
    return this.prefetch - this.held.size - this.arrived.size - this.inflight;
  }

  /** Resolves when a job is released and there may be room again, or when the session stops. */
  waitForRoom(): Promise<void> {
    return new Promise<void>((resolve) => (this.capacityWaiter = resolve));
  }

  /** `count` calls that may move a job to active were sent. */
  fetchesStarted(count: number): void {
    this.inflight += count;
  }

  /** `count` such calls have settled (each job they returned has `arrive`d). */
  fetchesSettled(count: number): void {
    this.inflight -= count;
  }

  /**
   * A call that may have moved a job to active failed, or the connection dropped: some job may
   * be in the active list without its reply. The fetch loop waits until every call in flight has
   * settled (`waitingToAdopt`), then `drain` adopts such jobs.
   */
  repliesMayBeLost(): void {
    this.needsAdoption = true;
  }

  get waitingToAdopt(): boolean {
    return this.needsAdoption && this.inflight > 0;
  }

  /** From now on, `moved` reports every job that this session's calls move to active. */
  followReplies(): void {
    this.replies = true;
  }

  /**
   * Redis moved this job to active for one of this session's calls: called in the order of the
   * replies, before BullMQ hands the job over (it must not throw: it runs in ioredis's parser).
   */
  movedToActive(jobId: string): void {
    this.moved.add(jobId);
  }

  arrive(job: Job): void {
    const id = job.id;
    if (id === undefined) return;
    this.arrived.set(id, { job, at: performance.now() });
    if (this.replies && !this.moved.has(id) && !this.needsAdoption) {
      // Never expected (each reply is reported before BullMQ hands its job over): the replies
      // cannot place this job, so the active list orders, and adopts, as after a lost reply.
      this.ctx.log.warn(
        { jobId: id },
        'a fetched job came without its reply reported; ordering by the active list',
      );
      this.repliesMayBeLost();
    }
  }

  /** Accepts a received job: out of `arrived`, noting how long it waited there. */
  private acceptArrived(id: string, arrival: Arrival): void {
    this.waited.push(performance.now() - arrival.at);
    this.arrived.delete(id);
    this.moved.delete(id);
    this.accept(arrival.job);
  }

  private reportWaits(): void {
    if (this.waited.length === 0) return;
    const waited = this.waited;
    this.waited = [];
    this.ctx.events.ordered(waited);
  }

  requestDrain(): void {
    // The common case at a low rate (one job received, nothing else in flight) needs no read of
    // the list, nor a turn of the event loop: the next fetches would be in flight by then.
    if (!this.draining && this.acceptAlone()) return;
    if (!this.draining && this.acceptInReplyOrder()) return;
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
        if (!adopt && this.acceptInReplyOrder()) continue;
        await this.acceptInFetchOrder(adopt);
      } while (this.drainAgain);
    } catch (error) {
      redisFailed(this.ctx, 'fetch', error, 'ordering fetched jobs failed; retrying');
      this.needsAdoption = true;
      setTimeout(() => this.requestDrain(), 200);
    } finally {
      this.draining = false;
    }
  }

  /**
   * Accepts the one job received when nothing else can be ahead of it: no other job received,
   * no call in flight that may have moved one, nothing to adopt. Then Redis need not be asked for
   * the order. Outside a drain, only when none is under way (its jobs are still in `arrived`).
   */
  private acceptAlone(): boolean {
    if (this.needsAdoption || !this.fetching) return false;
    if (this.inflight !== 0 || this.arrived.size !== 1) return false;
    for (const [id, arrival] of [...this.arrived]) this.acceptArrived(id, arrival);
    // No call in flight: every job a reply reported has come (a failed call sets needsAdoption).
    this.forgetMoved();
    this.reportWaits();
    if (this.capacityWaiter && this.room() > 0) this.wakeFetchLoop();
    return true;
  }

  /**
   * Accepts the jobs received in the order of the replies, as far as they have come. Whether
   * that placed every job it could: false when the active list must tell (a reply may be lost, a
   * job came that no reply reported, or a reported one will not come as no call is in flight).
   */
  private acceptInReplyOrder(): boolean {
    if (!this.replies || this.needsAdoption || !this.fetching) return false;
    // Accepting deletes the job from `moved`: the next one is its first again.
    for (const id of this.moved) {
      const arrival = this.arrived.get(id);
      if (arrival === undefined) break; // on its way: BullMQ has not handed it over yet
      this.acceptArrived(id, arrival);
    }
    this.reportWaits();
    if (this.capacityWaiter && this.room() > 0) this.wakeFetchLoop();
    if (this.arrived.size === 0) return true;
    // A job received is behind one still on its way; with no call in flight, that one's call
    // failed (and needsAdoption is set), or something is amiss: the list tells.
    return this.inflight > 0;
  }

  /** With no call in flight: the jobs reported whose calls failed will never come. */
  private forgetMoved(): void {
    if (this.moved.size === 0) return;
    for (const id of this.moved) if (!this.arrived.has(id)) this.moved.delete(id);
  }

  private async acceptInFetchOrder(adopt: boolean): Promise<void> {
    try {
      await this.acceptInListOrder(adopt);
    } finally {
      if (this.inflight === 0) this.forgetMoved();
    }
  }

  private async acceptInListOrder(adopt: boolean): Promise<void> {
    const { redis, worker, token, lockDurationMs } = this.ctx;
    const ordering = this.ordering;
    // Every job accepted so far was moved before every job not accepted yet (a drain accepts the
    // list's oldest jobs first and stops at the first one it cannot place), so the jobs to order
    // are the list's newest: at most one per job received and one per call in flight.
    const pending = this.arrived.size + this.inflight;
    if (this.acceptAlone()) return;
    // The list is read on its own connection, while other calls go on: jobs received during the
    // read may be missing from it (moved after it), so only those received before are checked;
    // jobs finished during the read may still be in it, and are no lost replies.
    const known = [...this.arrived.keys()];
    const released = new Set<string>();
    this.releasedDuringRead = released;
    let ids: string[] | undefined;
    let inList: Set<string>;
    try {
      // Calls started during the read may push the jobs received out of the newest `pending`.
      const newest = pending + NEWEST_SLACK;
      ids =
        adopt || this.needsAdoption ? undefined : await newestActiveJobs(ordering, worker, newest);
      inList = new Set(ids);
      // A job received but not among the newest (a held job taken back to the list's head pushed
      // it out): read the whole list rather than take it for gone.
      if (ids === undefined || known.some((id) => !inList.has(id))) {
        ids = await activeJobsInFetchOrder(ordering, worker);
        inList = new Set(ids);
      }
    } finally {
      this.releasedDuringRead = undefined;
    }
    const orphans: string[] = [];
    for (const id of ids) {
      const arrival = this.arrived.get(id);
      if (this.held.has(id)) {
        if (arrival !== undefined) {
          // BullMQ's stalled checker put back a job we hold, and it was fetched again.
          this.acceptArrived(id, arrival);
        }
        continue;
      }
      if (arrival === undefined && released.has(id)) continue; // finished during the read
      if (arrival !== undefined) {
        if (orphans.length > 0) break; // adopt those first, then come back
        this.acceptArrived(id, arrival);
        continue;
      }
      if (this.inflight > 0) break; // perhaps a reply still on its way: wait for it
      // No call is in flight: nobody will deliver this one (a lost reply), and any job in the
      // active list is this lease holder's to run.
      orphans.push(id);
    }
    // Received jobs that are no longer active (removed meanwhile): nothing to order them by.
    for (const id of known) {
      if (!inList.has(id) && this.arrived.delete(id)) {
        this.ctx.log.warn(
          { jobId: id },
          'a fetched job left the active list before it ran; skipped',
        );
      }
    }
    if (adopt && orphans.length === 0) this.needsAdoption = false;
    if (orphans.length > 0) {
      const taken = await takeOverJobs(redis, worker, orphans, token, lockDurationMs);
      const jobs = await Promise.all(taken.map((id) => Job.fromId(worker, id)));
      for (const job of jobs) if (job) this.accept(job);
      this.ctx.log.warn(
        { adopted: taken.length },
        'adopted jobs fetched while the connection dropped',
      );
      this.drainAgain = true;
    }
    this.reportWaits();
    if (this.capacityWaiter && this.room() > 0) this.wakeFetchLoop();
  }

  /**
   * Whether a call that finishes a job may fetch the next one too (BullMQ's `fetchNext`): while
   * fetching, with room once that job has left, and nothing to adopt first. It then counts as a fetch in flight.
   */
  startFetchWithFinish(jobId: string): boolean {
    // The jobs being finished leave: their places are free for their successors, so a full
    // session refills one for one, as a bare BullMQ Worker does, not in separate fetches.
    if (this.held.has(jobId)) this.leaving.add(jobId);
    const fetchNext =
      this.fetching &&
      !this.needsAdoption &&
      this.room() + this.leaving.size > 0 &&
      this.ctx.lease.isValid();
    if (fetchNext) this.inflight++;
    return fetchNext;
  }

  /** That fetch settled, with the job it moved to active, with none, or with its reply lost. */
  fetchWithFinishSettled(result: Job | undefined | 'lost'): void {
    if (result === 'lost') this.needsAdoption = true;
    else if (result !== undefined) this.arrive(result);
    this.inflight--;
    this.requestDrain();
  }
}
