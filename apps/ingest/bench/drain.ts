/**
 * Drains a backlog of change events into the queues and compares, in the same run on the same
 * Redis and MongoDB:
 *   - the source ceiling: a bare driver reading the same change stream;
 *   - the sink ceiling: BullMQ's own `addBulk` adding the same jobs (nothing read, nothing stored);
 *   - the naive pipeline of the resume-token blog posts: one `add` and one token `SET` per event;
 *   - the changeq ingest process (routing, encoding, per-queue transactions, token).
 * Usage: npm run bench (in apps/ingest) [-- --events 100000]
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { MongoClient, type ChangeStreamDocument, type Timestamp } from 'mongodb';
import { Router } from '@changeq/shared';
import { spawnTracked, startStack, terminate } from '@changeq/stack';
import { planEvent } from '../src/planner.js';
import type { PlannedJob } from '../src/enqueuer.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '100000' } } });
const EVENTS = Number(values.events);
const WORKERS = ['alpha', 'bravo', 'charlie'];
const MAIN = join(import.meta.dirname, '..', '..', 'dist', 'main.js');

const rate = (n: number, ms: number) => Math.round((n * 1000) / ms);
const fmt = (n: number) => n.toLocaleString('en-US');

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
  const results: { name: string; eventsPerSecond: number; note: string }[] = [];
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
    let started = performance.now();
    const events = await readAll(client, from, EVENTS);
    const readMs = performance.now() - started;
    results.push({
      name: 'bare driver read (source ceiling)',
      eventsPerSecond: rate(EVENTS, readMs),
      note: 'change stream, default batch size',
    });

    // 2. Sink ceiling: BullMQ addBulk of the very jobs the ingest would add.
    const router = new Router(WORKERS);
    const planned: PlannedJob[] = events.flatMap((event) => planEvent(event, router));
    const byQueue = new Map<string, PlannedJob[]>();
    for (const job of planned) byQueue.set(job.queue, [...(byQueue.get(job.queue) ?? []), job]);
    const bulkQueues = WORKERS.map(
      (name) => new Queue(name, { connection: redis, prefix: 'bulk' }),
    );
    started = performance.now();
    await Promise.all(
      bulkQueues.map(async (queue) => {
        const jobs = byQueue.get(queue.name) ?? [];
        for (let i = 0; i < jobs.length; i += 1000) {
          await queue.addBulk(
            jobs
              .slice(i, i + 1000)
              .map((job) => ({ name: job.name, data: job.data, opts: { jobId: job.jobId } })),
          );
        }
      }),
    );
    const bulkMs = performance.now() - started;
    results.push({
      name: 'BullMQ addBulk (sink ceiling)',
      eventsPerSecond: rate(EVENTS, bulkMs),
      note: '1,000 jobs per call, 3 queues in parallel',
    });
    await Promise.all(bulkQueues.map((queue) => queue.close()));

    // 3. The naive pipeline of the blog posts: add, then SET the token, per event.
    const naiveCount = Math.min(EVENTS, 20_000);
    const naiveQueues = new Map(
      WORKERS.map((name) => [name, new Queue(name, { connection: redis, prefix: 'naive' })]),
    );
    const stream = client
      .db('bench')
      .collection('events')
      .watch([], { startAtOperationTime: from });
    started = performance.now();
    for (let n = 0; n < naiveCount;) {
      const change = await stream.tryNext();
      if (!change) continue;
      const [job] = planEvent(change, router);
      await naiveQueues.get(job!.queue)!.add(job!.name, job!.data, { jobId: job!.jobId });
      await redis.set('naive:token', JSON.stringify(change._id));
      n += 1;
    }
    const naiveMs = performance.now() - started;
    await stream.close();
    await Promise.all([...naiveQueues.values()].map((queue) => queue.close()));
    results.push({
      name: 'naive add + SET per event (blog posts)',
      eventsPerSecond: rate(naiveCount, naiveMs),
      note: `first ${fmt(naiveCount)} events`,
    });

    // 4. The changeq ingest, as a process, from the same starting time.
    const dir = mkdtempSync(join(tmpdir(), 'changeq-bench-'));
    writeFileSync(join(dir, 'workers.toml'), `workers = ${JSON.stringify(WORKERS)}\n`);
    const waiting = async () => {
      const counts = await Promise.all(WORKERS.map((name) => redis.llen(`changeq:${name}:wait`)));
      return counts.reduce((a, b) => a + b, 0);
    };
    const spawnedAt = performance.now();
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
        WORKERS_FILE: join(dir, 'workers.toml'),
        WATCH: 'bench.events',
        START_AT: new Date(from.high * 1000).toISOString(),
        BACKLOG_LIMIT: String(EVENTS * 2),
        LOG_LEVEL: 'warn',
        ...(process.env.BATCH_SIZE ? { BATCH_SIZE: process.env.BATCH_SIZE } : {}),
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    let firstAt = 0;
    let firstCount = 0;
    for (;;) {
      const count = await waiting();
      if (count > 0 && firstAt === 0) {
        firstAt = performance.now();
        firstCount = count;
      }
      if (count >= EVENTS) break;
      if (child.exitCode !== null)
        throw new Error(`the ingest exited early with code ${child.exitCode}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const doneAt = performance.now();
    await terminate(child.pid!, 'SIGTERM');
    results.push({
      name: 'changeq ingest, steady state',
      eventsPerSecond: rate(EVENTS - firstCount, doneAt - firstAt),
      note: 'from its first commit to the last',
    });
    results.push({
      name: 'changeq ingest, with process start',
      eventsPerSecond: rate(EVENTS, doneAt - spawnedAt),
      note: 'spawn to last commit',
    });
  } finally {
    redis.disconnect();
    await client.close();
    await stack.stop();
  }

  const bulk = results.find((r) => r.name.startsWith('BullMQ addBulk'))!.eventsPerSecond;
  const naive = results.find((r) => r.name.startsWith('naive'))!.eventsPerSecond;
  console.log(
    `\ningest drain benchmark: ${fmt(EVENTS)} change events, 3 queues, same machine, same run\n`,
  );
  console.log(
    `${'figure'.padEnd(42)}${'events/s'.padStart(10)}${'vs addBulk'.padStart(12)}${'vs naive'.padStart(10)}  note`,
  );
  for (const r of results) {
    console.log(
      `${r.name.padEnd(42)}${fmt(r.eventsPerSecond).padStart(10)}${`${((r.eventsPerSecond / bulk) * 100).toFixed(0)}%`.padStart(12)}${`${(r.eventsPerSecond / naive).toFixed(1)}x`.padStart(10)}  ${r.note}`,
    );
  }
  const steady = results.find((r) => r.name === 'changeq ingest, steady state')!.eventsPerSecond;
  console.log(
    `\ngoal: ingest ≥ 80% of addBulk → ${((steady / bulk) * 100).toFixed(0)}%; ahead of the naive pipeline → ${(steady / naive).toFixed(1)}x`,
  );
}

await main();
