/** Everything one run measured: what the report prints, the JSON holds and the charts draw. */
import type { Throughput } from './measure/figure.js';
import type { LatencyRun } from './measure/latency.js';
import type { WriteRate } from './measure/write-rate.js';
import type { Machine } from './system.js';

export interface Goal {
  id: string;
  goal: string;
  measured: string;
  pass: boolean;
  /** For a miss: the measured reason, from the run's own figures. */
  reason?: string;
}

export interface Results {
  bench: 'changeq';
  command: string;
  quick: boolean;
  startedAt: string;
  seconds: number;
  machine: Machine;
  drain?: { backlogEvents: number; figures: Throughput[] };
  latency?: LatencyRun[];
  workers?: Throughput[];
  writeRate?: WriteRate;
  goals: Goal[];
  /** The most cores the rest of the machine kept busy during any figure, and a warning. */
  others: { maxCores: number; warning?: string };
}
