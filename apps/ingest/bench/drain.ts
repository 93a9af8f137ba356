/**
 * Drains a backlog of change events into the queues and compares, in the same run on the same
 * Redis and MongoDB:
 *   - the source ceiling: a bare driver reading the same change stream;
 *   - the sink ceiling: BullMQ's own `addBulk` adding the same jobs (nothing read, nothing stored);
 *   - the exactly-once sink ceiling: the same jobs added by the ingest's Enqueuer, one MULTI
 *     transaction with the queue's watermark per 1,000 jobs (the price of atomicity);
 *   - the naive pipeline of the resume-token blog posts: one `add` and one token `SET` per event;
 *   - the changeq ingest process (routing, encoding, per-queue transactions, token).
 * Every figure comes with the CPU time it cost, per process: this one, redis-server, the MongoDB
 * server and the ingest. On a machine with few cores, the servers' share decides the ceilings.
 * "others" is how many cores the rest of the machine kept busy meanwhile: a figure measured while
 * something else ran is not comparable.
 * Usage: npm run bench (in apps/ingest) [-- --events 100000]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { MongoClient, type ChangeStreamDocument, type Timestamp } from 'mongodb';
import { Router, createLogger } from '@changeq/shared';
import { spawnTracked, terminate } from '@changeq/processes';
import { startStack } from '@changeq/stack';
import { appMain, workersFile } from '@changeq/testkit';
import { Enqueuer, type PlannedJob } from '@changeq/store';
import { planEvent } from '@changeq/source';

const { values } = parseArgs({ options: { events: { type: 'string', default: '100000' } } });
const EVENTS = Number(values.events);
const WORKERS = ['alpha', 'bravo', 'charlie'];
const MAIN = appMain('ingest');
const CHUNK = 1000;

const rate = (n: number, ms: number) => Math.round((n * 1000) / ms);
const fmt = (n: number) => n.toLocaleString('en-US');
const percent = (part: number, whole: number) => `${((part / whole) * 100).toFixed(0)}%`;
/** A planned job's data as an object (the planner hands it over as JSON text). */
const dataOf = (job: PlannedJob): unknown => JSON.parse(job.json);

// --- CPU time -------------------------------------------------------------------------------

const PROCESSES = ['bench', 'redis', 'mongo', 'ingest'] as const;
type ProcessName = (typeof PROCESSES)[number];
/** CPU time (user + system) in µs, per process; a process not watched is absent. */
type CpuTimes = Partial<Record<ProcessName, number>>;
/** The other processes whose CPU time is read, by PID (0: not ours to watch, e.g. external). */
type Watched = Partial<Record<Exclude<ProcessName, 'bench'>, number>>;

/** The unit of /proc/<pid>/stat's CPU times (USER_HZ, normally 100 per second). */
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU time a process (all its threads) has used so far, in µs. */
function processCpu(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 is the command name in parentheses, which may itself hold spaces and ')'; the fields
  // after the last ')' start at field 3, so utime and stime (fields 14 and 15) are at 11 and 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / CLOCK_TICKS;
}

/** CPU time the whole machine (all cores) has used so far, in µs, from /proc/stat. */
function machineCpu(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  // "cpu user nice system idle iowait irq softirq steal …": all but idle and iowait count, steal
  // included (time the hypervisor gave to another guest is time this machine could not use).
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = [0, 1, 2, 5, 6, 7].reduce((sum, i) => sum + (ticks[i] ?? 0), 0);
  return (busy * 1_000_000) / CLOCK_TICKS;
}

interface Sample {
  at: number;
  cpu: CpuTimes;
  machine: number;
}

/** The time, and the CPU time used so far by this process and the watched ones. */
function sample(watched: Watched): Sample {
  const cpu: CpuTimes = {};
  for (const name of ['redis', 'mongo', 'ingest'] as const) {
    const pid = watched[name];
    if (pid) cpu[name] = processCpu(pid);
  }
  const own = process.cpuUsage();
  cpu.bench = own.user + own.system;
  return { at: performance.now(), cpu, machine: machineCpu() };
}

interface Figure {
  name: string;
  events: number;
  ms: number;
  /** CPU time each process used during the figure, in µs. */
  cpu: CpuTimes;
  /** CPU time the whole machine used meanwhile, in µs. */
  machine: number;
  note: string;
}

function figure(name: string, events: number, from: Sample, to: Sample, note: string): Figure {
  const cpu: CpuTimes = {};
  for (const key of PROCESSES) {
    const end = to.cpu[key];
    // A process missing from the first sample had not started yet: it counts from zero.
    if (end !== undefined) cpu[key] = end - (from.cpu[key] ?? 0);
  }
  return { name, events, ms: to.at - from.at, cpu, machine: to.machine - from.machine, note };
}

const eventsPerSecond = (f: Figure) => rate(f.events, f.ms);
const totalCpu = (f: Figure) => Object.values(f.cpu).reduce((a, b) => a + b, 0);
/** CPU µs per event, of one process or (without one) of all. */
const cpuPerEvent = (f: Figure, name?: ProcessName) =>
  (name ? (f.cpu[name] ?? 0) : totalCpu(f)) / f.events;
const coresBusy = (f: Figure) => totalCpu(f) / (f.ms * 1000);
/** Cores busy with anything else on the machine: a figure to distrust when it is high. */
const othersBusy = (f: Figure) => Math.max(0, f.machine - totalCpu(f)) / (f.ms * 1000);

// --- the benchmark --------------------------------------------------------------------------

async function readAll(
  client: MongoClient,
  from: Timestamp,
  limit: number,
): Promise<ChangeStreamDocument[]> {
  const stream = client.db('bench').collection('events').watch([], { startAtOperationTime: from });
  const events: ChangeStreamDocument[] = [];
  while (events.length < limit) {
    const change = await stream.tryNext();
    if (change) events.push(change);
  }
  await stream.close();
  return events;
}

async function main() {
  const stack = await startStack({ mongo: { historyMaxEvents: EVENTS * 3 } });
  const client = new MongoClient(stack.mongodbUri);
  const redis = new Redis(stack.redisUrl, { maxRetriesPerRequest: null });
  const servers: Watched = { redis: stack.redis.pid, mongo: stack.mongo.pid };
  const figures: Figure[] = [];
  try {
    await client.connect();
    // The history must start before the second START_AT names (cluster time moves with writes).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await client.db('warmup').collection('x').insertOne({});
    const hello = await client.db('admin').command({ hello: 1 });
    const from = hello.operationTime as Timestamp;
    console.log(`filling the change history with ${fmt(EVENTS)} inserts…`);
    for (let i = 0; i < EVENTS; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, EVENTS - i) }, (_, j) => ({
        n: i + j,
        name: `item ${i + j}`,
        tags: ['a', 'b'],
        at: new Date(),
      }));
      await client.db('bench').collection('events').insertMany(batch);
    }

    // 1. Source ceiling: the bare driver.
    let start = sample(servers);
    const events = await readAll(client, from, EVENTS);
    figures.push(
      figure(
        'bare driver read (source ceiling)',
        EVENTS,
        start,
        sample(servers),
        'change stream, default batch size',
      ),
    );

    // The jobs the ingest would add, per queue, planned before any figure starts.
    const router = new Router(WORKERS);
    const byQueue = new Map<string, PlannedJob[]>();
    for (const job of events.flatMap((event) => planEvent(event, router))) {
      const list = byQueue.get(job.queue);
      if (list) list.push(job);
      else byQueue.set(job.queue, [job]);
    }
    const chunksOf = <T>(items: readonly T[]): T[][] =>
      Array.from({ length: Math.ceil(items.length / CHUNK) }, (_, i) =>
        items.slice(i * CHUNK, (i + 1) * CHUNK),
      );

    // 2. Sink ceiling: BullMQ addBulk of the very jobs the ingest would add.
    const bulkQueues = [...byQueue].map(([name, jobs]) => ({
      queue: new Queue(name, { connection: redis, prefix: 'bulk' }),
      chunks: chunksOf(
        jobs.map((job) => ({ name: job.name, data: dataOf(job), opts: { jobId: job.jobId } })),
      ),
    }));
    start = sample(servers);
    await Promise.all(
      bulkQueues.map(async ({ queue, chunks }) => {
        for (const chunk of chunks) await queue.addBulk(chunk);
      }),
    );
    figures.push(
      figure(
        'BullMQ addBulk (sink ceiling)',
        EVENTS,
        start,
        sample(servers),
        `${fmt(CHUNK)} jobs per call, ${byQueue.size} queues in parallel`,
      ),
    );
    await Promise.all(bulkQueues.map(({ queue }) => queue.close()));

    // 3. Exactly-once sink ceiling: the ingest's own Enqueuer, one MULTI per queue and chunk,
    //    each ending with the queue's watermark, queues in parallel.
    const enqueuer = new Enqueuer({
      redis,
      prefix: 'multi',
      queueNames: [...byQueue.keys()],
      watermarkKey: (queue, kind) => `multi:watermark:${kind}:${queue}`,
      jobOptions: {},
      log: createLogger({ name: 'bench', level: 'warn' }),
    });
    start = sample(servers);
    await Promise.all(
      [...byQueue.values()].map(async (jobs) => {
        for (const chunk of chunksOf(jobs)) await enqueuer.commit(chunk, 'stream');
      }),
    );
    figures.push(
      figure(
        'BullMQ add in MULTI + watermark (exactly-once sink ceiling)',
        EVENTS,
        start,
        sample(servers),
        `the ingest's Enqueuer, ${fmt(CHUNK)} jobs per commit (100 per MULTI), ${byQueue.size} queues in parallel`,
      ),
    );
    await enqueuer.close();

    // 4. The naive pipeline of the blog posts: add, then SET the token, per event.
    const naiveCount = Math.min(EVENTS, 20_000);
    const naiveQueues = new Map(
      WORKERS.map((name) => [name, new Queue(name, { connection: redis, prefix: 'naive' })]),
    );
    const stream = client
      .db('bench')
      .collection('events')
      .watch([], { startAtOperationTime: from });
    start = sample(servers);
    for (let n = 0; n < naiveCount;) {
      const change = await stream.tryNext();
      if (!change) continue;
      const [job] = planEvent(change, router);
      await naiveQueues.get(job!.queue)!.add(job!.name, dataOf(job!), { jobId: job!.jobId });
      await redis.set('naive:token', JSON.stringify(change._id));
      n += 1;
    }
    figures.push(
      figure(
        'naive add + SET per event (blog posts)',
        naiveCount,
        start,
        sample(servers),
        `first ${fmt(naiveCount)} events`,
      ),
    );
    await stream.close();
    await Promise.all([...naiveQueues.values()].map((queue) => queue.close()));

    // 5. The changeq ingest, as a process, from the same starting time.
    const workers = workersFile(`workers = ${JSON.stringify(WORKERS)}\n`);
    const waiting = async () => {
      const counts = await Promise.all(WORKERS.map((name) => redis.llen(`changeq:${name}:wait`)));
      return counts.reduce((a, b) => a + b, 0);
    };
    const spawned = sample(servers);
    // BENCH_PROFILE=<dir> writes a CPU profile of the ingest there.
    const flags = process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.split(' ') : [];
    const profile = process.env.BENCH_PROFILE
      ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]
      : [];
    const child = spawnTracked(process.execPath, [...flags, ...profile, MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        MONGODB_URI: stack.mongodbUri,
        REDIS_URL: stack.redisUrl,
        WORKERS_FILE: workers,
        WATCH: 'bench.events',
        START_AT: new Date(from.high * 1000).toISOString(),
        BACKLOG_LIMIT: String(EVENTS * 2),
        LOG_LEVEL: 'warn',
        ...(process.env.BATCH_SIZE ? { BATCH_SIZE: process.env.BATCH_SIZE } : {}),
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const withIngest: Watched = { ...servers, ingest: child.pid };
    let first: Sample | null = null;
    let firstCount = 0;
    for (;;) {
      const count = await waiting();
      if (count > 0 && first === null) {
        first = sample(withIngest);
        firstCount = count;
      }
      if (count >= EVENTS) break;
      if (child.exitCode !== null)
        throw new Error(`the ingest exited early with code ${child.exitCode}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const done = sample(withIngest);
    await terminate(child.pid!, 'SIGTERM');
    figures.push(
      figure(
        'changeq ingest, steady state',
        EVENTS - firstCount,
        first!,
        done,
        'from its first commit to the last; bench = polling the queues',
      ),
      figure('changeq ingest, with process start', EVENTS, spawned, done, 'spawn to last commit'),
    );
  } finally {
    redis.disconnect();
    await client.close();
    await stack.stop();
  }

  const find = (prefix: string) => figures.find((f) => f.name.startsWith(prefix))!;
  const bulk = find('BullMQ addBulk');
  const multi = find('BullMQ add in MULTI');
  const naive = find('naive');
  const ingest = find('changeq ingest, steady state');
  const cores = availableParallelism();

  const cpuColumns = [...PROCESSES, 'total'] as const;
  const us = (n: number) => n.toFixed(1);
  const cell = (text: string, width: number) => text.padStart(width);
  /** A label centred in a rule of `width` characters, over a group of columns. */
  const group = (label: string, width: number) => {
    const rule = width - label.length - 2;
    return `${'─'.repeat(Math.floor(rule / 2))} ${label} ${'─'.repeat(Math.ceil(rule / 2))}`;
  };
  console.log(
    `\ningest drain benchmark: ${fmt(EVENTS)} change events, ${WORKERS.length} queues, same machine, same run, ${cores} cores\n`,
  );
  console.log(`${''.padEnd(70)} ${group('throughput vs', 25)}   ${group('CPU µs per event', 34)}`);
  console.log(
    `${'figure'.padEnd(60)}${cell('events/s', 10)}${cell('addBulk', 9)}${cell('MULTI', 8)}${cell('naive', 9)}  ${cpuColumns.map((c) => cell(c, 7)).join('')}${cell('cores', 7)}${cell('others', 8)}  note`,
  );
  for (const f of figures) {
    const perSecond = eventsPerSecond(f);
    const cpu = cpuColumns.map((c) => {
      const used = c === 'total' ? totalCpu(f) : f.cpu[c];
      return cell(used === undefined ? '–' : us(used / f.events), 7);
    });
    console.log(
      `${f.name.padEnd(60)}${cell(fmt(perSecond), 10)}${cell(percent(perSecond, eventsPerSecond(bulk)), 9)}${cell(percent(perSecond, eventsPerSecond(multi)), 8)}${cell(`${(perSecond / eventsPerSecond(naive)).toFixed(1)}x`, 9)}  ${cpu.join('')}${cell(coresBusy(f).toFixed(2), 7)}${cell(othersBusy(f).toFixed(2), 8)}  ${f.note}`,
    );
  }

  const breakdown = (f: Figure) =>
    PROCESSES.filter((name) => f.cpu[name] !== undefined)
      .map((name) => `${name} ${us(cpuPerEvent(f, name))}`)
      .join(', ');
  const ceiling = (f: Figure) => fmt(Math.round((cores * 1_000_000) / cpuPerEvent(f)));
  console.log(
    `\nCPU budget: on ${cores} cores a pipeline's ceiling is ${cores} / (its total CPU per event). The ingest costs ${us(cpuPerEvent(ingest))} µs/event (${breakdown(ingest)}), ${(cpuPerEvent(ingest) / cpuPerEvent(multi)).toFixed(1)}x the MULTI sink's ${us(cpuPerEvent(multi))} (addBulk's: ${us(cpuPerEvent(bulk))}) → at most ${ceiling(ingest)} events/s, against ${ceiling(multi)} for the MULTI sink and ${ceiling(bulk)} for addBulk.`,
  );
  console.log(
    `goal: ingest ≥ 80% of addBulk → ${percent(eventsPerSecond(ingest), eventsPerSecond(bulk))} (${percent(eventsPerSecond(ingest), eventsPerSecond(multi))} of the exactly-once MULTI ceiling); ahead of the naive pipeline → ${(eventsPerSecond(ingest) / eventsPerSecond(naive)).toFixed(1)}x`,
  );
}

await main();
