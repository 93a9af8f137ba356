import type { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';
import { readLiveWorkers } from '@changeq/store';
import { withTimeout } from './server.js';

export interface WorkerLeasesOptions {
  redis: Redis;
  prefix: string;
  /** The names to report, or a function giving them (the ingest's follow the ring). */
  workers: readonly string[] | (() => readonly string[]);
  /** Read at most this often (default 5000). */
  maxAgeMs?: number;
}

/**
 * `changeq_worker_live{worker}`: 1 while some process holds the name's lease, 0 when none does
 * (a crashed holder's lease expires after LEASE_TTL_MS). The ingest exports it for every name of
 * its current ring, so a name without any process is visible even though it exports nothing itself.
 */
export function registerWorkerLeaseMetrics(registry: Registry, options: WorkerLeasesOptions): void {
  type Reading = { workers: readonly string[]; live: number[] };
  let cached: ({ at: number } & Reading) | null = null;
  let reading: Promise<Reading> | null = null;
  const names = () => (typeof options.workers === 'function' ? options.workers() : options.workers);
  const read = async (): Promise<Reading> => {
    if (cached && Date.now() - cached.at < (options.maxAgeMs ?? 5_000)) return cached;
    reading ??= (async () => {
      const workers = names();
      const live = await withTimeout(
        readLiveWorkers(options.redis, options.prefix, workers),
        2_000,
        'reading the worker leases',
      );
      cached = { at: Date.now(), workers, live };
      return cached;
    })().finally(() => (reading = null));
    return reading;
  };
  new Gauge({
    name: 'changeq_worker_live',
    help: "1 while a process holds the worker name's lease (it runs the name's jobs), 0 when no process does. Exported by the ingest for every name of its current ring (workers.toml as last applied).",
    labelNames: ['worker'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      let now: Reading;
      try {
        now = await read();
      } catch {
        cached = null;
        return;
      }
      now.workers.forEach((worker, index) => this.set({ worker }, now.live[index] ?? 0));
    },
  });
}
