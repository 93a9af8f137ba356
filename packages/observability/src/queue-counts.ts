import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '@changeq/shared';
import { JOB_STATES, readJobCounts, type JobCounts } from '@changeq/store';
import { withTimeout } from './server.js';

export interface QueueCountsOptions {
  redis: Redis;
  prefix: string;
  /**
   * BullMQ queue names (event queues and dead-letter queues), or a function giving them when
   * counted: the ingest's follow the ring as worker names are added.
   */
  queues: readonly string[] | (() => readonly string[]);
  /** Counts are read at most this often, however often Prometheus scrapes (default 5000). */
  maxAgeMs?: number;
  /** A count that takes longer fails the refresh (default 2000). */
  timeoutMs?: number;
  log: Logger;
}

/**
 * Job counts per queue, cached: counting costs a few Redis round trips per queue, so scrapes
 * (and several scrapers) within `maxAgeMs` share one reading, and concurrent callers share the
 * reading in flight.
 */
export class QueueCounts {
  private readonly queues = new Map<string, Queue>();
  private cached: { at: number; counts: Map<string, JobCounts> } | null = null;
  private inFlight: Promise<Map<string, JobCounts>> | null = null;
  private failing = false;

  constructor(private readonly options: QueueCountsOptions) {}

  /** The queues to count now, each one's Queue made once. */
  private current(): [string, Queue][] {
    const { queues } = this.options;
    const names = typeof queues === 'function' ? queues() : queues;
    return names.map((name) => {
      let queue = this.queues.get(name);
      if (!queue) {
        queue = new Queue(name, { connection: this.options.redis, prefix: this.options.prefix });
        queue.on('error', () => undefined); // reported through the failed reading
        this.queues.set(name, queue);
      }
      return [name, queue];
    });
  }

  /** The counts, at most `maxAgeMs` old; rejects when Redis cannot be read. */
  async get(): Promise<Map<string, JobCounts>> {
    const maxAge = this.options.maxAgeMs ?? 5_000;
    if (this.cached && Date.now() - this.cached.at < maxAge) return this.cached.counts;
    this.inFlight ??= this.refresh().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private async refresh(): Promise<Map<string, JobCounts>> {
    try {
      const entries = await withTimeout(
        Promise.all(
          this.current().map(async ([name, queue]) => [name, await readJobCounts(queue)] as const),
        ),
        this.options.timeoutMs ?? 2_000,
        'counting the jobs of the queues',
      );
      const counts = new Map(entries);
      this.cached = { at: Date.now(), counts };
      if (this.failing) this.options.log.info('queue counts readable again');
      this.failing = false;
      return counts;
    } catch (error) {
      this.cached = null;
      if (!this.failing) {
        this.options.log.warn(
          { err: error },
          'cannot count the jobs of the queues for /metrics; retrying on the next scrape',
        );
      }
      this.failing = true;
      throw error;
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close().catch(() => {})));
  }
}

/**
 * `changeq_queue_jobs{queue, state}`: jobs per queue and state, read when scraped (cached). When
 * Redis cannot be read the metric has no samples, rather than stale ones.
 */
export function registerQueueMetrics(registry: Registry, counts: QueueCounts): void {
  new Gauge({
    name: 'changeq_queue_jobs',
    help: 'Jobs per BullMQ queue and state (event queues <name>, dead-letter queues <name>.dead); the backlog is state="waiting". Read at most every few seconds.',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      let all: Map<string, JobCounts>;
      try {
        all = await counts.get();
      } catch {
        return;
      }
      for (const [queue, byState] of all) {
        for (const state of JOB_STATES) this.set({ queue, state }, byState[state]);
      }
    },
  });
}
