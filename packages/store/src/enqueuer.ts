/**
 * The exactly-once write path: the ingest's jobs, added to the workers' queues in MULTI
 * transactions, each with its queue's guarded watermark.
 */
import { Queue, type JobsOptions } from 'bullmq';
import type { ChainableCommander, Redis } from 'ioredis';
import redisErrors from 'redis-errors';
import type { Logger } from '@changeq/shared';
import {
  addTransaction,
  defineAddScripts,
  EncodedJob,
  queueAddJob,
  queueConnection,
} from './bullmq-internals.js';
import { comparePositions, isPastWatermark } from './codecs/watermark.js';
import { FencedError } from './fenced-error.js';
import { queueKeys, type WatermarkKind } from './keys.js';
import { Scripts } from './scripts.js';

/** One job to add: where it goes and the position that orders it within its queue. */
export interface PlannedJob {
  queue: string;
  name: string;
  jobId: string;
  /** The job's data as BullMQ stores it: JSON text, encoded where the event was read. */
  json: string;
  /**
   * Sorts in the order jobs are produced (a resume token's `_data` for stream events, a padded
   * batch counter for snapshot copies), so a re-read after a crash can skip what a queue holds.
   */
  position: string;
}

export interface EnqueuerOptions {
  redis: Redis;
  prefix: string;
  queueNames: readonly string[];
  /** Key of a queue's watermark, per kind (see ingestKeys().watermark). */
  watermarkKey: (queue: string, kind: WatermarkKind) => string;
  jobOptions: JobsOptions;
  log: Logger;
  /** Jobs per transaction (default 100). */
  chunkSize?: number;
  /** Called after each transaction was applied (the ingest's crash points for its fault tests). */
  afterQueueCommit?: () => void;
  /**
   * Fenced commits (a standby-capable ingest): the key of a queue's fence copy
   * (ingestKeys().queueFence). Every transaction then runs on a connection of its queue's own,
   * WATCHing the copy, and only while it holds the fence given to `setFence`.
   */
  fenceKey?: (queue: string) => string;
  /** Called between the fence check and EXEC (the race test's way to move the fence there). */
  beforeExec?: (queue: string) => Promise<void>;
}

/** Where a queue's transactions are made: a connection and its scripts. */
interface CommitTarget {
  client: Redis;
  scripts: Scripts;
  transaction(): ChainableCommander;
}

/**
 * A queue's commit lane when commits are fenced: a connection of its own, used for nothing but
 * the lane's WATCH, MULTI and EXEC (a WATCH holds per connection, and any EXEC on it, another
 * lane's or a read's, would end it). Only the scripts a commit runs are defined on it (BullMQ's
 * add scripts and the watermark's), which keeps each MULTI cheap to make. The connection never
 * reconnects: ioredis would send a transaction cut off by a reconnection again on the new
 * connection, where the WATCH no longer holds. A closed lane is made again at the next commit.
 */
interface Lane extends CommitTarget {
  /**
   * The next commit's fence check, sent ahead: WATCH and GET of the fence copy, issued once the
   * lane's last EXEC was answered (so that the WATCH is the connection's only one and lasts to
   * the next EXEC), and awaited by that next commit. A quiet lane's check thus costs no round
   * trip on the way of its next batch. Null: nothing sent ahead.
   */
  armed: Promise<string | null> | null;
}

const DEFAULT_CHUNK_SIZE = 100;

/** A transaction built and not yet sent, and the watermark it sets. */
interface Prepared {
  transaction: ChainableCommander;
  last: string;
}

/**
 * Adds jobs to the workers' queues so that each event is enqueued exactly once, even when the
 * process dies between two Redis round trips: a queue's jobs are added in MULTI transactions,
 * each together with that queue's watermark (the position of its last job). After
 * a crash the ingest re-reads from its stored resume token and skips, per queue, every job at or
 * below the watermark. A per-queue transaction (rather than one across all queues) keeps each
 * transaction on one Redis Cluster slot when queues carry their own hash tags.
 */
export class Enqueuer {
  private readonly queues = new Map<string, Queue>();
  private readonly watermarks = new Map<string, string>();
  private readonly lanes = new Map<string, Lane>();
  /** The fencing number commits must hold (fenced commits; null: none, nothing commits). */
  private fence: number | null = null;

  constructor(private readonly options: EnqueuerOptions) {
    this.createQueues();
  }

  private createQueues(names: readonly string[] = this.options.queueNames): void {
    for (const name of names) {
      if (this.queues.has(name)) continue;
      const queue = new Queue(name, {
        connection: this.options.redis,
        prefix: this.options.prefix,
      });
      queue.on('error', (error) =>
        this.options.log.debug({ err: error, queue: name }, 'queue error'),
      );
      this.queues.set(name, queue);
    }
  }

  /**
   * Replaces the BullMQ queue objects after a Redis failure: a queue whose initialisation (script
   * loading, version check) was cut off by a lost connection keeps failing every call.
   */
  async reset(): Promise<void> {
    const old = [...this.queues.values()];
    this.queues.clear();
    this.watermarks.clear();
    this.createQueues([...new Set([...this.options.queueNames, ...old.map((q) => q.name)])]);
    await Promise.all(old.map((queue) => queue.close().catch(() => undefined)));
    await this.closeLanes();
  }

  /**
   * Fenced commits: makes `fence` (the lease's number of this term) the one commits hold, after
   * raising every queue's fence copy to it, so that from here on no earlier leader commits to
   * them. Call before the watermarks are read. Throws FencedError when a newer leader raised a
   * copy first. null: no commit from now on (the lease was lost).
   */
  async setFence(fence: number | null): Promise<void> {
    this.fence = null;
    // A check sent ahead in an earlier term would WATCH across the raise below, and abort the
    // term's first commit: the lanes are made again.
    await this.closeLanes();
    if (fence === null) return;
    await this.raiseFences(this.queueNames, fence);
    this.fence = fence;
  }

  private async raiseFences(names: readonly string[], fence: number): Promise<void> {
    const key = this.options.fenceKey;
    if (!key) throw new Error('this enqueuer has no fence keys (fenceKey)');
    const scripts = Scripts.of(this.options.redis);
    const held = await Promise.all(names.map((name) => scripts.raiseFence(key(name), fence)));
    const newer = held.findIndex((value) => value > fence);
    if (newer >= 0) {
      throw new FencedError(
        `raising the fence of queue ${names[newer]}`,
        fence,
        String(held[newer]),
      );
    }
  }

  /**
   * Adds the queues of names that joined the ring (kept for the rest of the process: a name that
   * left may still receive its handoff marker), with their stream watermarks.
   */
  async ensureQueues(names: readonly string[]): Promise<void> {
    const fresh = names.filter((name) => !this.queues.has(name));
    if (fresh.length === 0) return;
    // A queue joining under a fence is raised before its watermark is read, as at setFence.
    if (this.fence !== null) await this.raiseFences(fresh, this.fence);
    this.createQueues(fresh);
    await this.loadWatermarks('stream', fresh);
  }

  /** How many jobs a queue holds in any unfinished state (a handoff may skip an empty one). */
  async unfinishedCount(name: string): Promise<number> {
    return unfinishedJobs(this.queue(name));
  }

  get queueNames(): string[] {
    return [...this.queues.keys()];
  }

  queue(name: string): Queue {
    const queue = this.queues.get(name);
    if (!queue) throw new Error(`no queue named ${name}`);
    return queue;
  }

  /** Reads every queue's watermark of `kind`; call before the first commit after a start. */
  async loadWatermarks(kind: WatermarkKind, names = this.queueNames): Promise<void> {
    // One GET per queue, not MGET: on a Redis Cluster each watermark lives in its queue's slot.
    const values = await Promise.all(
      names.map((name) => this.options.redis.get(this.options.watermarkKey(name, kind))),
    );
    names.forEach((name, index) => {
      const value = values[index];
      if (value) this.watermarks.set(`${kind}:${name}`, value);
      else this.watermarks.delete(`${kind}:${name}`);
    });
  }

  /**
   * The highest watermark of `kind` known over the queues (loaded or committed since): no job of
   * that kind was enqueued after it. Null when no queue has one.
   */
  highestWatermark(kind: WatermarkKind): string | null {
    let highest: string | null = null;
    for (const [key, value] of this.watermarks) {
      if (!key.startsWith(`${kind}:`)) continue;
      if (highest === null || comparePositions(value, highest) > 0) highest = value;
    }
    return highest;
  }

  async clearWatermarks(kind: WatermarkKind): Promise<void> {
    await this.options.redis.del(
      ...this.queueNames.map((name) => this.options.watermarkKey(name, kind)),
    );
    for (const name of this.queueNames) this.watermarks.delete(`${kind}:${name}`);
  }

  /** Commits the jobs of one batch; resolves when every queue's transaction has been applied. */
  async commit(
    jobs: readonly PlannedJob[],
    kind: WatermarkKind,
  ): Promise<{ added: number; skipped: number }> {
    const byQueue = new Map<string, PlannedJob[]>();
    for (const job of jobs) {
      const list = byQueue.get(job.queue);
      if (list) list.push(job);
      else byQueue.set(job.queue, [job]);
    }
    let added = 0;
    let skipped = 0;
    await Promise.all(
      [...byQueue].map(async ([queueName, queueJobs]) => {
        const watermark = this.watermarks.get(`${kind}:${queueName}`);
        const fresh = queueJobs.filter((job) => isPastWatermark(job.position, watermark));
        skipped += queueJobs.length - fresh.length;
        if (fresh.length === 0) return;
        await this.commitQueue(queueName, fresh, kind);
        added += fresh.length;
      }),
    );
    return { added, skipped };
  }

  /**
   * Commits one queue's jobs as a lane of transactions of at most `chunkSize` jobs, each with
   * its own guarded watermark. A transaction is sent only once the one before it succeeded (so
   * a failure never leaves a later job in the queue ahead of an earlier one), but the next one
   * is built while Redis runs the current one: BullMQ's job building and Redis' script runs
   * overlap instead of taking turns.
   */
  private async commitQueue(
    queueName: string,
    jobs: readonly PlannedJob[],
    kind: WatermarkKind,
  ): Promise<void> {
    const lane = this.options.fenceKey ? await this.lane(queueName) : null;
    const queue = this.queue(queueName);
    const target = lane ?? (await queueTarget(queue));
    const chunks = chunksOf(jobs, this.options.chunkSize ?? DEFAULT_CHUNK_SIZE);
    let next: Promise<Prepared> | null = this.prepare(queue, target, chunks[0]!, kind);
    for (let index = 1; next !== null; index++) {
      const current: Prepared = await next;
      if (lane) await this.watchFence(queueName, lane);
      const execution = current.transaction.exec();
      const following = chunks[index];
      next = following !== undefined ? this.prepare(queue, target, following, kind) : null;
      // Built but never sent when this transaction fails: an unsent MULTI costs nothing.
      next?.catch(() => undefined);
      let results: Awaited<typeof execution>;
      try {
        results = await execution;
      } finally {
        // Sent only after EXEC was answered: EXEC ends every WATCH of its connection, and a
        // WATCH sent before it (ioredis may write a script check ahead of a MULTI) would be gone.
        if (lane) this.arm(queueName, lane);
      }
      this.check(queueName, results, target.client);
      this.watermarks.set(`${kind}:${queueName}`, current.last);
      this.options.afterQueueCommit?.();
    }
  }

  /** Sends the lane's next fence check ahead (see Lane.armed). */
  private arm(queueName: string, lane: Lane): void {
    const key = this.options.fenceKey!(queueName);
    const armed = watchAndRead(lane.client, key);
    armed.catch(() => undefined); // its error, if any, surfaces at the next commit
    lane.armed = armed;
  }

  /**
   * Fenced commits: WATCHes the queue's fence copy on the lane's connection and checks that it
   * holds this term's fence; EXEC then aborts (a null reply: "aborted") if a newer leader raised
   * the copy in between. A guard inside the MULTI could not do this: EXEC does not roll back, so
   * BullMQ's add scripts would run whatever a guard before them answered.
   */
  private async watchFence(queueName: string, lane: Lane): Promise<void> {
    const { client } = lane;
    const fence = this.fence;
    const key = this.options.fenceKey!(queueName);
    if (fence === null) throw new FencedError(`the commit to queue ${queueName}`, 0, null);
    // Sent ahead after the lane's last EXEC, or now (WATCH and GET together: one round trip).
    const armed = lane.armed;
    lane.armed = null;
    const held = await (armed ?? watchAndRead(client, key));
    if (held !== String(fence)) {
      await client.unwatch().catch(() => undefined);
      throw new FencedError(`the commit to queue ${queueName}`, fence, held);
    }
    await this.options.beforeExec?.(queueName);
    if (client.status !== 'ready') {
      // Classified as Redis being away: the ingest retries the batch on a new lane.
      throw new redisErrors.AbortError(`the commit connection of queue ${queueName} closed`);
    }
  }

  /** The commit lane of a queue (fenced commits), made again when its connection closed. */
  private async lane(queueName: string): Promise<Lane> {
    let lane = this.lanes.get(queueName);
    if (lane && (lane.client.status === 'end' || lane.client.status === 'close')) {
      this.lanes.delete(queueName);
      lane.client.disconnect();
      lane = undefined;
    }
    if (!lane) {
      this.queue(queueName); // a queue this enqueuer knows
      const client = this.options.redis.duplicate({ retryStrategy: () => null });
      client.on('error', (error) =>
        this.options.log.debug({ err: error, queue: queueName }, 'commit connection error'),
      );
      lane = { ...laneTarget(client), armed: null };
      this.lanes.set(queueName, lane);
    }
    return lane;
  }

  private async closeLanes(): Promise<void> {
    const lanes = [...this.lanes.values()];
    this.lanes.clear();
    for (const lane of lanes) lane.client.disconnect();
  }

  /** Queues the jobs and the guarded watermark on a MULTI, without sending it. */
  private async prepare(
    queue: Queue,
    target: CommitTarget,
    jobs: readonly PlannedJob[],
    kind: WatermarkKind,
  ): Promise<Prepared> {
    const { scripts } = target; // defined on the connection before its MULTI is made
    const transaction = target.transaction();
    await Promise.all(
      jobs.map((job) =>
        queueAddJob(
          new EncodedJob(
            queue,
            job.name,
            job.json,
            { ...this.options.jobOptions, jobId: job.jobId },
            job.jobId,
          ),
          transaction,
        ),
      ),
    );
    const last = jobs[jobs.length - 1]!.position;
    // The watermark goes last, guarded: EXEC does not roll back when one command fails (a
    // NOSCRIPT after a SCRIPT FLUSH, a refused job), and an unguarded watermark would then claim
    // jobs that are not there, and the retry would skip them. Set only if every job is present.
    scripts.queueWatermark(
      transaction,
      {
        watermark: this.options.watermarkKey(queue.name, kind),
        jobPrefix: queueKeys(this.options.prefix, queue.name).jobPrefix,
      },
      last,
      jobs.map((job) => job.jobId),
    );
    return { transaction, last };
  }

  /** Throws unless every command of the transaction succeeded and the watermark was set. */
  private check(queueName: string, results: [Error | null, unknown][] | null, client: Redis): void {
    if (results === null) {
      // Only a WATCH aborts a transaction: the queue's fence copy changed after its check.
      if (this.options.fenceKey) {
        throw new FencedError(
          `the commit to queue ${queueName}`,
          this.fence ?? 0,
          'another number (EXEC was aborted by the WATCH)',
        );
      }
      throw new Error(`the Redis transaction for queue ${queueName} was aborted`);
    }
    for (const [error, reply] of results) {
      if (error) {
        if (/^NOSCRIPT\b/.test(error.message)) {
          // Redis lost its scripts (SCRIPT FLUSH) under a live connection. ioredis sends a
          // script in full on the first use per connection, so a new connection heals it; the
          // ingest retries the batch (its failure policy counts NOSCRIPT as transient).
          client.disconnect(true);
        }
        throw error;
      }
      // BullMQ's add scripts answer a negative code for a refused job (e.g. a missing parent).
      if (typeof reply === 'number' && reply < 0) {
        throw new Error(`BullMQ refused a job for queue ${queueName} (code ${reply})`);
      }
    }
    if (results[results.length - 1]?.[1] !== 1) {
      throw new Error(
        `a job of queue ${queueName} is missing after its transaction; the watermark was left as it was`,
      );
    }
  }

  /** Waiting jobs per queue (what backpressure compares with the backlog limit). */
  async waitingCounts(): Promise<Map<string, number>> {
    const entries = await Promise.all(
      [...this.queues].map(async ([name, queue]) => [name, await queue.getWaitingCount()] as const),
    );
    return new Map(entries);
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    await this.closeLanes();
  }
}

/** A lane's transactions: only the scripts a commit runs are defined on its connection. */
function laneTarget(client: Redis): CommitTarget {
  defineAddScripts(client);
  return { client, scripts: Scripts.forCommits(client), transaction: () => addTransaction(client) };
}

/** Unfenced commits go on the queue's own connection, once BullMQ defined its scripts there. */
async function queueTarget(queue: Queue): Promise<CommitTarget> {
  const client = await queueConnection(queue);
  return { client, scripts: Scripts.of(client), transaction: () => client.multi() };
}

/**
 * WATCHes `key` and reads it, in one write and one round trip (a pipeline on a lane's connection
 * is cheap to make: few commands are defined on it): the value the WATCH holds to.
 */
async function watchAndRead(client: Redis, key: string): Promise<string | null> {
  const replies = (await client.pipeline().watch(key).get(key).exec()) ?? [];
  for (const [error] of replies) if (error) throw error;
  return (replies[1]?.[1] as string | null | undefined) ?? null;
}

/**
 * Splits a queue's jobs into transactions of about `size`, never between two jobs of one
 * position (a routing key's handoff marker and its event): a watermark cannot tell them apart,
 * so a crash between their transactions would skip the second on the re-read.
 */
function chunksOf(jobs: readonly PlannedJob[], size: number): PlannedJob[][] {
  const chunks: PlannedJob[][] = [];
  let chunk: PlannedJob[] = [];
  for (const job of jobs) {
    const last = chunk[chunk.length - 1];
    if (chunk.length >= size && last !== undefined && last.position !== job.position) {
      chunks.push(chunk);
      chunk = [];
    }
    chunk.push(job);
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/** How many jobs a queue holds that are not finished (waiting, active, delayed...). */
export async function unfinishedJobs(queue: Pick<Queue, 'getJobCounts'>): Promise<number> {
  const counts = await queue.getJobCounts(
    'waiting',
    'active',
    'delayed',
    'prioritized',
    'waiting-children',
  );
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}
