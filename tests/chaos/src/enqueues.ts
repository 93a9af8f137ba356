/**
 * Every job added to the row's queues, as Redis itself reports it: BullMQ writes an `added` entry
 * to the queue's event stream (`<prefix>:<queue>:events`) in the same script that stores the job,
 * so a job enqueued twice (the second time after the first was completed and removed) shows as
 * two entries. The streams are capped (about 10,000 entries), so they are tailed while the row
 * runs, and at the end each stream's `entries-added` counter says whether every entry was read.
 */
import { Redis } from 'ioredis';
import { eventQueueName } from '@changeq/store';

export interface Enqueue {
  /** The worker name whose queue received the job. */
  worker: string;
  jobId: string;
  /** Redis' clock (ms) when the job was added: the stream entry's id. */
  at: number;
}

export interface EnqueueTally {
  adds: Enqueue[];
  /** Adds BullMQ refused because a job with that id was still there (`duplicated` entries). */
  refusedAsDuplicates: number;
  /** Queues whose stream says more entries were added than were read (trimmed before read). */
  incomplete: string[];
  /** Queues whose stream counts fewer entries than were read: Redis lost them (emptied). */
  reset: string[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class EnqueueLog {
  readonly adds: Enqueue[] = [];
  refusedAsDuplicates = 0;
  private readonly read = new Map<string, number>();
  private readonly last = new Map<string, string>();
  private readonly redis: Redis;
  private running = true;
  private readonly loop: Promise<void>;
  private closing: Promise<EnqueueTally> | null = null;
  /** The workers' queues, in the order of `workers`. */
  private readonly queues: readonly string[];

  constructor(
    redisUrl: string,
    private readonly prefix: string,
    private readonly workers: readonly string[],
  ) {
    this.queues = workers.map(eventQueueName);
    this.redis = new Redis(redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
    this.redis.on('error', () => undefined); // Redis is what the faults break; the loop retries
    for (const queue of this.queues) {
      this.last.set(queue, '0');
      this.read.set(queue, 0);
    }
    this.loop = this.tail();
  }

  private key(queue: string): string {
    return `${this.prefix}:${queue}:events`;
  }

  private async tail(): Promise<void> {
    while (this.running) {
      try {
        await this.readOnce(200);
      } catch {
        await sleep(100); // Redis down or restarting
      }
    }
  }

  private async readOnce(blockMs: number | null): Promise<number> {
    const args: (string | number)[] = ['COUNT', 20_000];
    if (blockMs !== null) args.push('BLOCK', blockMs);
    args.push('STREAMS', ...this.queues.map((q) => this.key(q)));
    args.push(...this.queues.map((q) => this.last.get(q)!));
    const reply = (await this.redis.call('XREAD', ...args)) as
      [string, [string, string[]][]][] | null;
    let count = 0;
    for (const [key, entries] of reply ?? []) {
      const index = this.queues.findIndex((q) => this.key(q) === key);
      const queue = this.queues[index]!;
      for (const [id, fields] of entries) {
        count += 1;
        this.last.set(queue, id);
        this.read.set(queue, this.read.get(queue)! + 1);
        const field = (name: string) => fields[fields.indexOf(name) + 1];
        const event = field('event');
        // A routing key change's handoff marker is a job of the ingest's, not of a change.
        if (event === 'added' && field('name') !== 'handoff') {
          this.adds.push({
            worker: this.workers[index]!,
            jobId: field('jobId')!,
            at: Number(id.split('-')[0]),
          });
        } else if (event === 'duplicated') {
          this.refusedAsDuplicates += 1;
        }
      }
    }
    return count;
  }

  /** Stops tailing after reading what is there now; says which streams were read in full. */
  close(): Promise<EnqueueTally> {
    this.closing ??= this.finish();
    return this.closing;
  }

  private async finish(): Promise<EnqueueTally> {
    this.running = false;
    await this.loop;
    const incomplete: string[] = [];
    const reset: string[] = [];
    try {
      while ((await this.readOnce(null)) > 0);
      for (const queue of this.queues) {
        const info = (await this.redis
          .call('XINFO', 'STREAM', this.key(queue))
          .catch(() => null)) as (string | number)[] | null;
        if (!info) continue;
        const added = Number(info[info.indexOf('entries-added') + 1]);
        if (added > this.read.get(queue)!) incomplete.push(queue);
        if (added < this.read.get(queue)!) reset.push(queue);
      }
    } finally {
      this.redis.disconnect();
    }
    return { adds: this.adds, refusedAsDuplicates: this.refusedAsDuplicates, incomplete, reset };
  }
}
