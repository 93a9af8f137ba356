import type { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';
import { readLiveWorkers } from '@changeq/store';
import { withTimeout } from './server.js';

export interface WorkerLeasesOptions {
  redis: Redis;
  prefix: string;
  workers: readonly string[];
  /** Read at most this often (default 5000). */
  maxAgeMs?: number;
}

/**
 * `changeq_worker_live{worker}`: 1 while some process holds the name's lease, 0 when none does
 * (a crashed holder's lease expires after LEASE_TTL_MS). The ingest exports it for every name in
 * workers.toml, so a name without any process is visible even though it exports nothing itself.
 */
export function registerWorkerLeaseMetrics(registry: Registry, options: WorkerLeasesOptions): void {
  let cached: { at: number; live: number[] } | null = null;
  let reading: Promise<number[]> | null = null;
  const read = async (): Promise<number[]> => {
    if (cached && Date.now() - cached.at < (options.maxAgeMs ?? 5_000)) return cached.live;
    reading ??= withTimeout(
      readLiveWorkers(options.redis, options.prefix, options.workers),
      2_000,
      'reading the worker leases',
    )
      .then((live) => {
        cached = { at: Date.now(), live };
        return live;
      })
      .finally(() => (reading = null));
    return reading;
  };
  new Gauge({
    name: 'changeq_worker_live',
    help: "1 while a process holds the worker name's lease (it runs the name's jobs), 0 when no process does. Exported by the ingest for every name in workers.toml.",
    labelNames: ['worker'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      let live: number[];
      try {
        live = await read();
      } catch {
        cached = null;
        return;
      }
      options.workers.forEach((worker, index) => this.set({ worker }, live[index] ?? 0));
    },
  });
}
