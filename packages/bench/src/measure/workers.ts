/**
 * Worker throughput: a queue filled with the jobs the ingest would add (update events over 1,000
 * documents), then drained by one process, either bare BullMQ Workers (the ceiling) or the changeq
 * worker, at a given concurrency, with a no-op handler or one that awaits 5 ms. Timed from the
 * first completed job to the last (the process's start-up is not throughput).
 */
import { Queue } from 'bullmq';
import { ObjectId, Timestamp } from 'mongodb';
import { documentIdentity, encodeEvent } from '@changeq/shared';
import { eventJobName } from '@changeq/store';
import { freePort } from '@changeq/processes';
import { workersFile } from '@changeq/testkit';
import { changeqHandlers, startApp, startProgram, type Started } from '../processes.js';
import type { Servers } from '../servers.js';
import { costBetween, rssMb, rssPeaks, sample, type Sample } from '../system.js';
import { throughput, type Throughput } from './figure.js';

const QUEUE = 'alpha';
const DOCS = 1000;

export type WorkerKind = 'bare' | 'changeq';
export type HandlerKind = 'noop' | 'sleep5';

function jobs(count: number) {
  const ids = Array.from({ length: DOCS }, () => new ObjectId());
  return Array.from({ length: count }, (_, i) => {
    const id = ids[i % DOCS]!;
    const event = {
      _id: { _data: `w${i}` },
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
    return { name: eventJobName('update', 'shop.orders'), data, opts: { jobId: `j${i}` } };
  });
}

function startWorkers(
  servers: Servers,
  kind: WorkerKind,
  handler: HandlerKind,
  concurrency: number,
  httpPort: number,
): Started {
  const env = { REDIS_URL: servers.stack.redisUrl, BENCH_HANDLER: handler };
  if (kind === 'bare') {
    return startProgram('alternatives/bare-workers', {
      ...env,
      MONGODB_URI: servers.stack.mongodbUri,
      BENCH_PREFIX: 'changeq',
      BENCH_WORKERS: QUEUE,
      BENCH_WATCH: 'unused.unused',
      BENCH_CONCURRENCY: String(concurrency),
    });
  }
  return startApp(
    'worker',
    ['--name', QUEUE, '--handlers', changeqHandlers, '--concurrency', String(concurrency)],
    { ...env, WORKERS_FILE: workersFile(`workers = ["${QUEUE}"]\n`), HTTP_PORT: String(httpPort) },
  );
}

/** The worker's mean wait for fetch order (ms), from its /metrics; undefined if unreadable. */
async function fetchOrderWaitMs(httpPort: number): Promise<number | undefined> {
  const text = await fetch(`http://127.0.0.1:${httpPort}/metrics`)
    .then((response) => response.text())
    .catch(() => '');
  const value = (name: string) => {
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`changeq_worker_fetch_order_wait_seconds_${name}{`));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const sum = value('sum');
  const count = value('count');
  return sum === undefined || !count ? undefined : (sum / count) * 1000;
}

export async function workerThroughput(
  servers: Servers,
  kind: WorkerKind,
  handler: HandlerKind,
  concurrency: number,
  count: number,
): Promise<Throughput> {
  await servers.redis.flushdb();
  const queue = new Queue(QUEUE, { connection: servers.redis, prefix: 'changeq' });
  const all = jobs(count);
  for (let i = 0; i < all.length; i += 1000) await queue.addBulk(all.slice(i, i + 1000));
  const httpPort = await freePort();
  const proc = startWorkers(servers, kind, handler, concurrency, httpPort);
  const name = kind === 'bare' ? 'bare worker' : 'worker';
  const watched = { ...servers.pids, [name]: proc.pid };
  const peaks = rssPeaks(watched);
  const completedKey = `changeq:${QUEUE}:completed`;
  let first: Sample | null = null;
  let firstCount = 0;
  let rssStartMb = 0;
  try {
    for (;;) {
      const done = await servers.redis.zcard(completedKey);
      if (done > 0 && first === null) {
        first = sample(watched);
        firstCount = done;
        rssStartMb = rssMb(proc.pid);
      }
      if (done >= count) break;
      proc.check();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const cost = costBetween(first!, sample(watched));
    const orderWait = kind === 'changeq' ? await fetchOrderWaitMs(httpPort) : undefined;
    return throughput({
      id: `${kind}-${handler}-c${concurrency}`,
      label: `${kind === 'bare' ? 'bare BullMQ Worker' : 'changeq worker'}, ${handler === 'noop' ? 'no-op' : '5 ms'} handler, concurrency ${concurrency}`,
      side: kind === 'bare' ? 'ceiling' : 'changeq',
      events: count - firstCount,
      cost,
      rssPeakMb: peaks.stop(),
      rssStartMb,
      ...(orderWait === undefined ? {} : { fetchOrderWaitMs: orderWait }),
      note: `${count.toLocaleString('en-US')} jobs over ${DOCS.toLocaleString('en-US')} documents`,
    });
  } finally {
    peaks.stop();
    await proc.stop();
    await queue.close();
  }
}
