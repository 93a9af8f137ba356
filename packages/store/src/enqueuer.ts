/**
 * The exactly-once write path: the ingest's jobs, added to the workers' queues in MULTI
 * transactions, each with its queue's guarded watermark.
 */
import { Queue, type JobsOptions } from 'bullmq';
import type { ChainableCommander, Redis } from 'ioredis';
import type { Logger } from '@changeq/shared';
import { EncodedJob, queueAddJob, queueConnection } from './bullmq-internals.js';
import { comparePositions, isPastWatermark } from './codecs/watermark.js';
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
  }

  /**
   * Adds the queues of names that joined the ring (kept for the rest of the process: a name that
   * left may still receive its handoff marker), with their stream watermarks.
   */
  async ensureQueues(names: readonly string[]): Promise<void> {
    const fresh = names.filter((name) => !this.queues.has(name));
    if (fresh.length === 0) return;
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
    const queue = this.queue(queueName);
    const client = await queueConnection(queue);
    const chunks = chunksOf(jobs, this.options.chunkSize ?? DEFAULT_CHUNK_SIZE);
    let next: Promise<Prepared> | null = this.prepare(queue, client, chunks[0]!, kind);
    for (let index = 1; next !== null; index++) {
      const current: Prepared = await next;
      const execution = current.transaction.exec();
      const following = chunks[index];
      next = following !== undefined ? this.prepare(queue, client, following, kind) : null;
      // Built but never sent when this transaction fails: an unsent MULTI costs nothing.
      next?.catch(() => undefined);
      this.check(queueName, await execution, client);
      this.watermarks.set(`${kind}:${queueName}`, current.last);
      this.options.afterQueueCommit?.();
    }
  }

  /** Queues the jobs and the guarded watermark on a MULTI, without sending it. */
  private async prepare(
    queue: Queue,
    client: Redis,
    jobs: readonly PlannedJob[],
    kind: WatermarkKind,
  ): Promise<Prepared> {
    const scripts = Scripts.of(client); // defined on the connection before its MULTI is made
    const transaction = client.multi();
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
    if (results === null)
      throw new Error(`the Redis transaction for queue ${queueName} was aborted`);
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
  }
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
