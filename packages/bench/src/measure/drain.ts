/**
 * Drains of the backlog: the ceilings (bare driver read, bare addBulk of the same jobs), the
 * alternatives and the changeq ingest, one after another on the same servers. A pipeline process
 * is timed from its first job in Redis to its last (its start-up is not draining), polling the
 * queues' wait lists; its CPU and the servers' are read from /proc over the same stretch.
 */
import { BSON, type ChangeStreamDocument } from 'mongodb';
import { Queue } from 'bullmq';
import { Router } from '@changeq/shared';
import { planEvent } from '@changeq/source';
import { workersFile } from '@changeq/testkit';
import type { Backlog } from '../backlog.js';
import { startApp, startProgram, type Started } from '../processes.js';
import { waitingJobs, type Servers } from '../servers.js';
import { costBetween, rssMb, rssPeaks, sample, type Sample } from '../system.js';
import { throughput, type Throughput } from './figure.js';

export const WORKERS = ['alpha', 'bravo', 'charlie'];
const CHUNK = 1000;
/** A pipeline whose job count has not moved for this long has stalled (the figure is dropped). */
const STALL_MS = 30_000;

const fmt = (n: number) => n.toLocaleString('en-US');

/** The source ceiling: the bare driver reading the backlog's change stream (default batches). */
export async function bareRead(
  servers: Servers,
  backlog: Backlog,
): Promise<{ figure: Throughput; events: ChangeStreamDocument[] }> {
  const stream = servers.client
    .db(backlog.db)
    .collection(backlog.coll)
    .watch([], { resumeAfter: backlog.markerToken });
  const start = sample(servers.pids);
  const events: ChangeStreamDocument[] = [];
  while (events.length < backlog.events) events.push(await stream.next());
  const cost = costBetween(start, sample(servers.pids));
  await stream.close();
  return {
    events,
    figure: throughput({
      id: 'read',
      label: 'bare driver read',
      side: 'ceiling',
      events: events.length,
      cost,
      note: 'change stream, default batch size, in the bench process',
    }),
  };
}

/** The sink ceiling: BullMQ addBulk of the very jobs the ingest adds, queues in parallel. */
export async function bareAddBulk(
  servers: Servers,
  events: ChangeStreamDocument[],
): Promise<Throughput> {
  await servers.redis.flushdb();
  const router = new Router(WORKERS);
  const byQueue = new Map<string, { name: string; data: unknown; opts: { jobId: string } }[]>();
  for (const job of events.flatMap((event) => planEvent(event, router))) {
    const list = byQueue.get(job.queue) ?? [];
    // addBulk takes data objects: parsing the planned JSON is not part of what is timed.
    list.push({ name: job.name, data: JSON.parse(job.json), opts: { jobId: job.jobId } });
    byQueue.set(job.queue, list);
  }
  const queues = [...byQueue].map(([name, jobs]) => ({
    queue: new Queue(name, { connection: servers.redis, prefix: 'bulk' }),
    jobs,
  }));
  const start = sample(servers.pids);
  await Promise.all(
    queues.map(async ({ queue, jobs }) => {
      for (let i = 0; i < jobs.length; i += CHUNK) await queue.addBulk(jobs.slice(i, i + CHUNK));
    }),
  );
  const cost = costBetween(start, sample(servers.pids));
  await Promise.all(queues.map(({ queue }) => queue.close()));
  return throughput({
    id: 'addBulk',
    label: 'bare BullMQ addBulk',
    side: 'ceiling',
    events: events.length,
    cost,
    note: `${fmt(CHUNK)} jobs per call, ${byQueue.size} queues in parallel, in the bench process`,
  });
}

export interface PipelineDrain {
  id: string;
  label: string;
  side: 'alternative' | 'changeq';
  /** The process's name in the CPU and RSS columns. */
  process: string;
  prefix: string;
  /** How many jobs mean done (fewer than the backlog for a pipeline that cannot finish it). */
  target: number;
  note: string;
  /** Runs before the process starts (after Redis is emptied). */
  prepare?(): Promise<unknown>;
  start(): Started;
}

/** Starts a pipeline process and times it from its first job in Redis to `target` jobs. */
export async function drainPipeline(servers: Servers, drain: PipelineDrain): Promise<Throughput> {
  await servers.redis.flushdb();
  await drain.prepare?.();
  const proc = drain.start();
  const watched = { ...servers.pids, [drain.process]: proc.pid };
  const peaks = rssPeaks(watched);
  let first: Sample | null = null;
  let firstCount = 0;
  let rssStartMb = 0;
  let last = { count: -1, at: performance.now() };
  try {
    for (;;) {
      const count = await waitingJobs(servers.redis, drain.prefix, WORKERS);
      if (count > 0 && first === null) {
        first = sample(watched);
        firstCount = count;
        rssStartMb = rssMb(proc.pid);
      }
      if (count >= drain.target) break;
      proc.check();
      if (count !== last.count) last = { count, at: performance.now() };
      else if (performance.now() - last.at > STALL_MS) {
        throw new Error(
          `${drain.label} stalled at ${count} of ${drain.target} jobs for ${STALL_MS / 1000} s`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const cost = costBetween(first!, sample(watched));
    return throughput({
      id: drain.id,
      label: drain.label,
      side: drain.side,
      events: drain.target - firstCount,
      cost,
      rssPeakMb: peaks.stop(),
      rssStartMb,
      note: drain.note,
    });
  } finally {
    peaks.stop();
    await proc.stop();
  }
}

/** The environment of the bench's alternative programs, starting after the backlog's marker. */
function alternativeEnv(servers: Servers, backlog: Backlog, prefix: string) {
  return {
    MONGODB_URI: servers.stack.mongodbUri,
    REDIS_URL: servers.stack.redisUrl,
    BENCH_PREFIX: prefix,
    BENCH_WORKERS: WORKERS.join(','),
    BENCH_WATCH: `${backlog.db}.${backlog.coll}`,
    BENCH_START: BSON.EJSON.stringify({ resumeAfter: backlog.markerToken }),
  };
}

export function fortyLineDrain(servers: Servers, backlog: Backlog): PipelineDrain {
  return {
    id: 'fortyLine',
    label: '(a) 40-line pipeline',
    side: 'alternative',
    process: 'pipeline',
    prefix: 'forty',
    target: backlog.events,
    note: 'watch, addBulk per queue per batch, SET token per batch',
    start: () => startProgram('alternatives/forty-line', alternativeEnv(servers, backlog, 'forty')),
  };
}

export function naiveDrain(servers: Servers, backlog: Backlog, limit: number): PipelineDrain {
  const target = Math.min(backlog.events, limit);
  return {
    id: 'naive',
    label: '(b) naive add + SET per event',
    side: 'alternative',
    process: 'pipeline',
    prefix: 'naive',
    target,
    note: `first ${fmt(target)} events (it is slow)`,
    start: () => startProgram('alternatives/naive', alternativeEnv(servers, backlog, 'naive')),
  };
}

export function mongochangestreamDrain(servers: Servers, backlog: Backlog): PipelineDrain {
  // Its batches are 500 events; the last partial one waits for its 30 s flush timer: the figure
  // stops at the last full batch and says so.
  const target = backlog.events - (backlog.events % 500);
  return {
    id: 'mongochangestream',
    label: '(c) mongochangestream 0.55 + BullMQ',
    side: 'alternative',
    process: 'pipeline',
    prefix: 'mcs',
    target,
    note:
      target === backlog.events
        ? 'defaults (500 per batch, a 30 s flush timer)'
        : `defaults (500 per batch); the last ${backlog.events - target} events wait for its 30 s flush timer, not counted`,
    // It resumes from its own key in Redis: put the marker's token there, as a restart would.
    prepare: () =>
      servers.redis.set(
        `mongoChangeStream:${backlog.db}:${backlog.coll}:changeStreamToken`,
        JSON.stringify(backlog.markerToken),
      ),
    start: () =>
      startProgram('alternatives/mongochangestream', alternativeEnv(servers, backlog, 'mcs')),
  };
}

export function changeqDrain(servers: Servers, backlog: Backlog): PipelineDrain {
  return {
    id: 'changeq',
    label: 'changeq ingest',
    side: 'changeq',
    process: 'ingest',
    prefix: 'changeq',
    target: backlog.events,
    note: 'default settings but START_AT and BACKLOG_LIMIT (2x the backlog: no backpressure)',
    start: () =>
      startApp('ingest', [], {
        MONGODB_URI: servers.stack.mongodbUri,
        REDIS_URL: servers.stack.redisUrl,
        WORKERS_FILE: workersFile(`workers = ${JSON.stringify(WORKERS)}\n`),
        WATCH: `${backlog.db}.${backlog.coll}`,
        START_AT: backlog.startAt,
        BACKLOG_LIMIT: String(backlog.events * 2),
        // The A/B of fencing's cost (docs/scaling.md): passed on when the bench is run with it.
        ...(process.env.CHANGEQ_BENCH_UNFENCED === '1' ? { CHANGEQ_BENCH_UNFENCED: '1' } : {}),
      }),
  };
}
