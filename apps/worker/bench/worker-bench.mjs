#!/usr/bin/env node
/* global console, setTimeout, performance */
// Throughput of the changeq worker next to a bare BullMQ Worker, on one Redis, in one run.
//   npm run bench:worker            (from the repository root; builds first)
//   node apps/worker/bench/worker-bench.mjs [--events 20000] [--docs 1000]
//
// 1. No-op handler: events/s at concurrency 1 and 16, changeq vs bare BullMQ (goal: >= 70%).
// 2. Handler awaiting 5 ms: changeq at concurrency 32 vs 1 (goal: >= 20x).
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

async function waitAll(queue, count, started) {
  while ((await queue.getCompletedCount()) < count) await sleep(20);
  return count / ((performance.now() - started) / 1000);
}

async function bare(concurrency, count, handler) {
  const name = `bare${++run}`;
  const queue = await fill(name, count);
  const started = performance.now();
  const worker = new Worker(name, handler, { connection: redis, prefix: 'changeq', concurrency });
  const rate = await waitAll(queue, count, started);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return rate;
}

async function changeq(concurrency, count, handler) {
  const name = `cq${++run}`;
  const queue = await fill(name, count);
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
  const rate = await waitAll(queue, count, started);
  await worker.stop(5_000);
  await queue.obliterate({ force: true });
  await queue.close();
  return rate;
}

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
  for (const c of [1, 16]) {
    const b = [];
    const q = [];
    for (let rep = 0; rep < REPS; rep++) {
      b.push(await bare(c, EVENTS, noop));
      q.push(await changeq(c, EVENTS, noop));
    }
    const mb = median(b);
    const mq = median(q);
    say(
      `no-op handler, concurrency ${c}: bare BullMQ ${fmt(mb)}, changeq ${fmt(mq)} = ${((mq / mb) * 100).toFixed(0)}% of bare (goal >= 70%)   [runs: bare ${b.map(Math.round).join(', ')}; changeq ${q.map(Math.round).join(', ')}]`,
    );
  }
  const s1 = [];
  const s32 = [];
  for (let rep = 0; rep < REPS; rep++) {
    s1.push(await changeq(1, Math.min(EVENTS, 400), wait5));
    s32.push(await changeq(32, Math.min(EVENTS, 8000), wait5));
  }
  say(
    `5 ms handler: concurrency 1 ${fmt(median(s1))}, concurrency 32 ${fmt(median(s32))} = ${(median(s32) / median(s1)).toFixed(1)}x (goal >= 20x)   [runs: c1 ${s1.map(Math.round).join(', ')}; c32 ${s32.map(Math.round).join(', ')}]`,
  );
} finally {
  await redis.quit();
  await server.stop();
}
