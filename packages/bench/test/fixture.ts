/** A made-up run (no servers): what the report, the goals and the charts are tested on. */
import type { Throughput } from '../src/measure/figure.js';
import type { LatencyRun } from '../src/measure/latency.js';
import type { Results } from '../src/results.js';
import type { Cost } from '../src/system.js';

const cost = (ms: number, cpu: Record<string, number>, othersCores = 0): Cost => ({
  ms,
  cpu,
  othersCores,
});

const drain = (
  id: string,
  label: string,
  side: Throughput['side'],
  perSecond: number,
): Throughput => ({
  id,
  label,
  side,
  events: perSecond,
  perSecond,
  cost: cost(1000, { bench: 50_000, redis: 300_000, mongo: 100_000, ingest: 950_000 }),
  rssPeakMb: { ingest: 180, pipeline: 120 },
  note: '',
});

const latency = (pipeline: LatencyRun['pipeline'], rate: number, p99: number): LatencyRun => {
  const d = { count: 100, p50: p99 / 3, p90: p99 / 2, p99, max: p99 * 2, mean: p99 / 3 };
  return {
    pipeline,
    rate,
    achievedRate: rate,
    writes: 100,
    missing: 0,
    endToEnd: d,
    startup: { ...d, p50: p99, p99: p99 * 4 },
    warmupSeconds: 5,
    ingestStage: { ...d, p99: p99 * 0.6 },
    workerStage: { ...d, p99: p99 * 0.4 },
    cdf: [
      { q: 0.5, ms: p99 / 3 },
      { q: 0.99, ms: p99 },
      { q: 1, ms: p99 * 2 },
    ],
    // The same CPU for both: changeq's workers are a process per name, (a)'s share one.
    cost: cost(
      1000,
      pipeline === 'changeq'
        ? {
            ingest: 100_000,
            'worker alpha': 40_000,
            'worker bravo': 30_000,
            'worker charlie': 30_000,
          }
        : { pipeline: 100_000, workers: 100_000 },
    ),
    rssPeakMb: { 'worker alpha': 120 },
  };
};

export function fixture(): Results {
  return {
    bench: 'changeq',
    command: 'npm run bench',
    quick: false,
    startedAt: '2026-01-01T00:00:00.000Z',
    seconds: 60,
    machine: { cores: 2, cpuModel: 'test CPU', node: 'v20', loadStart: 0.1, loadEnd: 0.2 },
    drain: {
      backlogEvents: 1000,
      figures: [
        drain('read', 'bare driver read', 'ceiling', 40_000),
        drain('addBulk', 'bare BullMQ addBulk', 'ceiling', 30_000),
        drain('fortyLine', '(a) 40-line pipeline', 'alternative', 15_000),
        drain('changeq', 'changeq ingest', 'changeq', 20_000),
      ],
    },
    latency: [
      latency('fortyLine', 300, 10),
      latency('changeq', 300, 12),
      latency('fortyLine', 1000, 20),
      latency('changeq', 1000, 40),
    ],
    workers: [1, 16, 32].flatMap((c): Throughput[] => [
      {
        ...drain(`bare-noop-c${c}`, 'bare', 'ceiling', 5000),
        // 50 µs per job for the bare Worker (40 of them on its main thread) and 50 for Redis
        cost: {
          ...cost(1000, { 'bare worker': 250_000, redis: 250_000 }),
          mainThread: { 'bare worker': 200_000, redis: 250_000 },
        },
        rssPeakMb: {},
      },
      {
        ...drain(`changeq-noop-c${c}`, 'changeq', 'changeq', c === 1 ? 5500 : 4000),
        // 70 µs per job for changeq's worker (45 of them on its main thread) and 50 for Redis
        // (at 4,000 jobs)
        cost: {
          ...cost(1000, { worker: 280_000, redis: 200_000 }),
          mainThread: { worker: 180_000, redis: 200_000 },
        },
        rssPeakMb: { worker: 130 },
        fetchOrderWaitMs: 1.875,
      },
    ]),
    goals: [],
    others: { maxCores: 0 },
  };
}
