/**
 * End-to-end latency, from a write to the start of the handler that gets its event, at a steady
 * write rate, for changeq (ingest + one worker process per worker name) and for alternative (a)
 * (the 40-line pipeline + bare BullMQ Workers), in the same run on the same servers.
 *
 * Stages, on one clock (the machine's wall clock, read with sub-millisecond resolution in every
 * process; BullMQ's job.timestamp is Date.now() in whole ms in the process that added the job):
 *   ingest stage = job.timestamp - write sent;  worker stage = handler start - job.timestamp.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, workersFile } from '@changeq/testkit';
import { pacedInserts } from '../load.js';
import { changeqHandlers, startApp, startProgram, type Started } from '../processes.js';
import { parseRecords, type HandlerCall } from '../record.js';
import type { Servers } from '../servers.js';
import { cdfPoints, distribution, type Distribution } from '../stats.js';
import { costBetween, rssPeaks, sample, type Cost } from '../system.js';
import { WORKERS } from './drain.js';

export type LatencyPipeline = 'changeq' | 'fortyLine';
const CONCURRENCY = 16;
const WARMUP = 50;
/**
 * Seconds of writes at the rate before the measured window (after the pipeline is watching), so
 * that it measures the processes running, not starting: V8 optimizing the hot code, its first
 * collections, connections and scripts. With one second, most of the window's slowest tenth fell
 * in its first three seconds, for both pipelines (changeq starts four processes, (a) two). The
 * warm-up's own latency is reported beside (`startup`), not judged.
 */
export const WARMUP_SECONDS = { full: 5, quick: 3 };

export interface LatencyRun {
  pipeline: LatencyPipeline;
  rate: number;
  /** The rate the load generator achieved (below `rate` when the machine could not keep up). */
  achievedRate: number;
  writes: number;
  /** Events whose handler never started within the wait (should be 0). */
  missing: number;
  endToEnd: Distribution;
  /**
   * End to end over the warm-up, the first `warmupSeconds` after the pipeline watched (absent in
   * runs saved before it was measured).
   */
  startup?: Distribution;
  warmupSeconds?: number;
  ingestStage: Distribution;
  workerStage: Distribution;
  cdf: { q: number; ms: number }[];
  cost: Cost;
  rssPeakMb: Record<string, number>;
}

function startPipeline(
  servers: Servers,
  pipeline: LatencyPipeline,
  coll: string,
  recordFile: string,
): Record<string, Started> {
  const base = { REDIS_URL: servers.stack.redisUrl, BENCH_RECORD_FILE: recordFile };
  if (pipeline === 'fortyLine') {
    const env = {
      ...base,
      MONGODB_URI: servers.stack.mongodbUri,
      BENCH_PREFIX: 'forty',
      BENCH_WORKERS: WORKERS.join(','),
      BENCH_WATCH: `bench.${coll}`,
    };
    return {
      pipeline: startProgram('alternatives/forty-line', env),
      workers: startProgram('alternatives/bare-workers', {
        ...env,
        BENCH_HANDLER: 'record',
        BENCH_CONCURRENCY: String(CONCURRENCY),
      }),
    };
  }
  const workers = workersFile(`workers = ${JSON.stringify(WORKERS)}\n`);
  const started: Record<string, Started> = {
    ingest: startApp('ingest', [], {
      ...base,
      MONGODB_URI: servers.stack.mongodbUri,
      WORKERS_FILE: workers,
      WATCH: `bench.${coll}`,
      // The A/B of fencing's cost (docs/scaling.md): passed on as the drain does.
      ...(process.env.CHANGEQ_BENCH_UNFENCED === '1' ? { CHANGEQ_BENCH_UNFENCED: '1' } : {}),
    }),
  };
  for (const name of WORKERS) {
    started[`worker ${name}`] = startApp(
      'worker',
      ['--name', name, '--handlers', changeqHandlers, '--concurrency', String(CONCURRENCY)],
      { ...base, WORKERS_FILE: workers, BENCH_HANDLER: 'record' },
    );
  }
  return started;
}

const recordsIn = (file: string): HandlerCall[] => {
  try {
    return parseRecords(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
};

async function until(what: string, timeoutMs: number, check: () => boolean, alive: () => void) {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    alive();
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** changeq's handler does not see the job: its timestamp is read back from the job's hash. */
async function jobTimestamps(
  servers: Servers,
  records: HandlerCall[],
): Promise<Map<string, number>> {
  const pipe = servers.redis.pipeline();
  for (const r of records)
    for (const q of WORKERS) pipe.hget(`changeq:${q}:${r.jobId}`, 'timestamp');
  const replies = (await pipe.exec()) ?? [];
  const out = new Map<string, number>();
  records.forEach((r, i) => {
    for (let q = 0; q < WORKERS.length; q++) {
      const value = replies[i * WORKERS.length + q]?.[1];
      if (typeof value === 'string') out.set(r.jobId, Number(value));
    }
  });
  return out;
}

export async function latencyRun(
  servers: Servers,
  pipeline: LatencyPipeline,
  rate: number,
  seconds: number,
  warmupSeconds: number,
): Promise<LatencyRun> {
  await servers.redis.flushdb();
  const coll = `lat_${pipeline}_${rate}`;
  const dir = tempDir('changeq-bench-');
  const recordFile = join(dir, 'records.txt');
  const procs = startPipeline(servers, pipeline, coll, recordFile);
  const alive = () => Object.values(procs).forEach((p) => p.check());
  const collection = servers.client.db('bench').collection(coll);
  try {
    // Warm-up: writes until the first handler call shows the pipeline is watching, then
    // `warmupSeconds` of writes at the rate (see WARMUP_SECONDS). Their sequence is < 0.
    let warm = -1_000_000;
    await until(
      'the pipeline to start',
      60_000,
      () => recordsIn(recordFile).length > 0,
      () => {
        alive();
        void collection.insertOne({ seq: warm++ });
      },
    );
    const warmWrites = Math.max(WARMUP, Math.round(rate * warmupSeconds));
    const warmFirst = -warmWrites - 1;
    const warmSent = await pacedInserts(collection, rate, warmWrites, warmFirst);
    const watched = {
      ...servers.pids,
      ...Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, p.pid])),
    };
    const peaks = rssPeaks(watched);
    const from = sample(watched);
    const writes = Math.round(rate * seconds);
    const sent = await pacedInserts(collection, rate, writes, 0);
    const done = () => recordsIn(recordFile).filter((r) => r.seq >= 0).length >= writes;
    await until('the handlers', 30_000, done, alive).catch(() => undefined);
    const cost = costBetween(from, sample(watched));
    const rssPeakMb = peaks.stop();
    const all = recordsIn(recordFile);
    const records = all.filter((r) => r.seq >= 0 && r.seq < writes);
    const inWarmup = (seq: number) => seq >= warmFirst && seq < warmFirst + warmWrites;
    const startup = firstCalls(all.filter((r) => inWarmup(r.seq))).map(
      (r) => r.start - warmSent[r.seq - warmFirst]!,
    );
    const calls = firstCalls(records);
    const stamps =
      pipeline === 'changeq'
        ? await jobTimestamps(servers, calls)
        : new Map(calls.map((r) => [r.jobId, r.jobTimestamp ?? NaN]));
    const e2e: number[] = [];
    const ingest: number[] = [];
    const worker: number[] = [];
    for (const r of calls) {
      const at = sent[r.seq]!;
      e2e.push(r.start - at);
      const added = stamps.get(r.jobId);
      if (added !== undefined && Number.isFinite(added)) {
        ingest.push(added - at);
        worker.push(r.start - added);
      }
    }
    return {
      pipeline,
      rate,
      achievedRate: Math.round(((writes - 1) * 1000) / Math.max(1, sent[writes - 1]! - sent[0]!)),
      writes,
      missing: writes - calls.length,
      endToEnd: distribution(e2e),
      startup: distribution(startup),
      warmupSeconds,
      ingestStage: distribution(ingest),
      workerStage: distribution(worker),
      cdf: cdfPoints(e2e),
      cost,
      rssPeakMb,
    };
  } finally {
    await Promise.all(Object.values(procs).map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The first call of each event only (a retry would count twice). */
function firstCalls(records: HandlerCall[]): HandlerCall[] {
  const first = new Map<number, HandlerCall>();
  for (const r of records) if (!first.has(r.seq)) first.set(r.seq, r);
  return [...first.values()];
}
