#!/usr/bin/env node
/* global console, setTimeout, performance, process */
// Throughput of the changeq worker next to a bare BullMQ Worker, on one Redis, in one run.
//   npm run bench:worker            (from the repository root; builds first)
//   node apps/worker/bench/worker-bench.mjs [--events 20000] [--docs 1000] [--concurrency 1,16,32]
//
// 1. No-op handler: events/s at each concurrency, changeq vs bare BullMQ (goal: >= 100%).
//    With the CPU time per event of this process and of Redis (steadier than rates when the
//    machine is shared).
// 2. Handler awaiting 5 ms: at concurrency 1 and 32, changeq vs bare BullMQ; changeq at 32 vs 1
//    (goal: >= 20x).
import { parseArgs } from 'node:util';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis } from '@changeq/stack';
import { createLogger, documentIdentity, encodeEvent } from '@changeq/shared';
import { ObjectId, Timestamp } from 'mongodb';
import { eventJobName } from '@changeq/store';
import { startWorker, defaultPrefetch } from '../dist/index.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    docs: { type: 'string', default: '1000' },
    reps: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '1,16,32' },
  },
});
const REPS = Number(values.reps);
const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
const EVENTS = Number(values.events);
const DOCS = Number(values.docs);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = await startRedis();
const redis = new Redis(server.url, { maxRetriesPerRequest: null });
const log = createLogger({ name: 'bench', level: 'warn' });
let run = 0;

function events(count) {
  const ids = Array.from({ length: DOCS }, () => new ObjectId());
  const out = [];
  for (let i = 0; i < count; i++) {
    const id = ids[i % DOCS];
    const event = {
      _id: { _data: `bench${run}-${i}` },
      operationType: 'update',
      clusterTime: new Timestamp({ t: 1_700_000_000 + Math.floor(i / 1000), i: (i % 1000) + 1 }),
      ns: { db: 'shop', coll: 'orders' },
      documentKey: { _id: id },
      updateDescription: { updatedFields: { n: i }, removedFields: [], truncatedArrays: [] },
    };
    const data = encodeEvent(event, {
      ns: 'shop.orders',
      op: 'update',
      doc: documentIdentity('shop.orders', id),
    });
    out.push({
      name: eventJobName('update', 'shop.orders'),
      data,
      opts: { jobId: `r${run}-${i}` },
    });
  }
  return out;
}

async function fill(name, count) {
  const queue = new Queue(name, { connection: redis, prefix: 'changeq' });
  const jobs = events(count);
  for (let i = 0; i < jobs.length; i += 1000) await queue.addBulk(jobs.slice(i, i + 1000));
  return queue;
}

/** CPU time Redis has used so far, in microseconds. */
async function redisCpu() {
  const info = await redis.info('cpu');
  const used = (name) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? NaN);
  return (used('used_cpu_user') + used('used_cpu_sys')) * 1e6;
}

/**
 * Events/s, and the CPU time per event of this process and of Redis: on a shared machine the
 * rate follows the load of others, the CPU per event much less.
 */
async function waitAll(queue, count, started, cpu, redisBefore) {
  while ((await queue.getCompletedCount()) < count) await sleep(20);
  const rate = count / ((performance.now() - started) / 1000);
  const used = process.cpuUsage(cpu);
  const redisUsed = (await redisCpu()) - redisBefore;
  return { rate, cpuUs: (used.user + used.system) / count, redisUs: redisUsed / count };
}

async function bare(concurrency, count, handler) {
  const name = `bare${++run}`;
  const queue = await fill(name, count);
  const redisBefore = await redisCpu();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const worker = new Worker(name, handler, { connection: redis, prefix: 'changeq', concurrency });
  const rate = await waitAll(queue, count, started, cpu, redisBefore);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return rate;
}

async function changeq(concurrency, count, handler) {
  const name = `cq${++run}`;
  const queue = await fill(name, count);
  const redisBefore = await redisCpu();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const worker = await startWorker({
    worker: name,
    redisUrl: server.url,
    settings: {
      concurrency,
      attempts: 3,
      backoffMs: 100,
      maxBackoffMs: 1000,
      timeoutMs: 60_000,
      deadLetter: 'block',
    },
    dispatch: (event, ctx) => ({ matched: true, result: handler(event, ctx) }),
    log,
    prefetch: defaultPrefetch(concurrency),
  });
  const rate = await waitAll(queue, count, started, cpu, redisBefore);
  await worker.stop(5_000);
  await queue.obliterate({ force: true });
  await queue.close();
  return rate;
}

const cpuPerEvent = (runs) =>
  `worker ${median(runs.map((r) => r.cpuUs)).toFixed(0)} µs + Redis ${median(runs.map((r) => r.redisUs)).toFixed(0)} µs`;
const noop = async () => undefined;
const wait5 = () => sleep(5);
const fmt = (n) => `${Math.round(n).toLocaleString('en-US')} events/s`;
const lines = [];
const say = (line) => {
  lines.push(line);
  console.log(line);
};

try {
  console.log(
    `changeq worker benchmark: ${EVENTS} events over ${DOCS} documents per run, Redis ${server.url}`,
  );
  // Warm-up (JIT, Redis script cache).
  await bare(4, 2000, noop);
  await changeq(4, 2000, noop);
  // This machine's timing is noisy: alternate the contenders and report medians.
  for (const c of values.concurrency.split(',').map(Number)) {
    const b = [];
    const q = [];
    for (let rep = 0; rep < REPS; rep++) {
      b.push(await bare(c, EVENTS, noop));
      q.push(await changeq(c, EVENTS, noop));
    }
    const mb = median(b.map((r) => r.rate));
    const mq = median(q.map((r) => r.rate));
    say(
      `no-op handler, concurrency ${c}: bare BullMQ ${fmt(mb)}, changeq ${fmt(mq)} = ${((mq / mb) * 100).toFixed(0)}% of bare (goal >= 100%)   [runs: bare ${b.map((r) => Math.round(r.rate)).join(', ')}; changeq ${q.map((r) => Math.round(r.rate)).join(', ')}]`,
    );
    say(`  CPU per event (median): bare ${cpuPerEvent(b)}; changeq ${cpuPerEvent(q)}`);
  }
  // A handler awaiting 5 ms: concurrency must multiply the rate, as it does for bare BullMQ.
  const fiveMs = {};
  for (const c of [1, 32]) {
    const count = Math.min(EVENTS, c === 1 ? 400 : 8000);
    const b = [];
    const q = [];
    for (let rep = 0; rep < REPS; rep++) {
      b.push(await bare(c, count, wait5));
      q.push(await changeq(c, count, wait5));
    }
    fiveMs[c] = median(q.map((r) => r.rate));
    const mb = median(b.map((r) => r.rate));
    say(
      `5 ms handler, concurrency ${c}: bare BullMQ ${fmt(mb)}, changeq ${fmt(fiveMs[c])} = ${((fiveMs[c] / mb) * 100).toFixed(0)}% of bare   [runs: bare ${b.map((r) => Math.round(r.rate)).join(', ')}; changeq ${q.map((r) => Math.round(r.rate)).join(', ')}]`,
    );
  }
  say(
    `5 ms handler: changeq concurrency 32 = ${(fiveMs[32] / fiveMs[1]).toFixed(1)}x concurrency 1 (goal >= 20x)`,
  );
} finally {
  await redis.quit();
  await server.stop();
}
