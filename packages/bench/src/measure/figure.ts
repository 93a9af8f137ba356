/** A throughput figure: how many events per second, and what it cost per process. */
import type { Cost } from '../system.js';

export type Side = 'ceiling' | 'alternative' | 'changeq';

export interface Throughput {
  /** Stable key (used by the goals, the JSON and the charts). */
  id: string;
  label: string;
  side: Side;
  events: number;
  perSecond: number;
  cost: Cost;
  /** Peak RSS (MB) per process sampled during the figure. */
  rssPeakMb: Record<string, number>;
  /**
   * A pipeline's RSS (MB) when its first job reached Redis (a worker's: when its first job
   * completed): what it holds before draining (its runtime, modules and connections), so the peak
   * splits into a base and what draining added.
   */
  rssStartMb?: number;
  /**
   * The changeq worker's: how long a job waited on average between its reply and the scheduler
   * taking it, for its place in fetch order (its `changeq_worker_fetch_order_wait_seconds`).
   */
  fetchOrderWaitMs?: number;
  note: string;
}

export function throughput(
  fields: Omit<Throughput, 'perSecond' | 'rssPeakMb'> & { rssPeakMb?: Record<string, number> },
): Throughput {
  return {
    ...fields,
    rssPeakMb: fields.rssPeakMb ?? {},
    perSecond: Math.round((fields.events * 1000) / fields.cost.ms),
  };
}

/** CPU µs per event of one process. */
export const cpuPerEvent = (f: Throughput, name: string): number =>
  (f.cost.cpu[name] ?? 0) / f.events;

export const totalCpuPerEvent = (f: Throughput): number =>
  Object.values(f.cost.cpu).reduce((a, b) => a + b, 0) / f.events;
