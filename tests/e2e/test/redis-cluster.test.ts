/**
 * Redis Cluster (issue 10): the ingest and three workers on a local cluster of three masters,
 * then a fourth name added (SIGHUP: the ring, its handoff markers and the holds on the cluster).
 * Every change is handled exactly once and in order per document; each worker's queue keys live
 * in one slot (its hash tag), and the queues spread over at least two masters; `changeq status`
 * and the board's queue list work on the cluster.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Cluster, Redis } from 'ioredis';
import { MongoClient, type Timestamp } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { RingRouter } from '@changeq/shared';
import { planEvent } from '@changeq/source';
import { decodeRing } from '@changeq/store';
import {
  startMongo,
  startRedisCluster,
  type RunningMongo,
  type RunningRedisCluster,
} from '@changeq/stack';
import {
  CallLog,
  Supervised,
  changesSince,
  expectedJobs,
  recordingHandlersPath,
  startApp,
  tempDir,
  writeChaos,
  waitForDeliveries,
} from '@changeq/testkit';

// Where their hash tags land is the cluster's choice (slot ranges 0-5460, 5461-10922,
// 10923-16383 over three masters): the test checks it rather than trusting it.
const BASE = ['north', 'south', 'east'];
const WORKERS = [...BASE, 'west'];
const PREFIX = 'cq';

let cluster: RunningRedisCluster;
let mongo: RunningMongo;
beforeAll(async () => {
  [cluster, mongo] = await Promise.all([startRedisCluster(), startMongo()]);
});
afterAll(async () => {
  await Promise.all([cluster?.stop(), mongo?.stop()]);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every key of each master (SCAN on the node itself: a cluster has no global SCAN). */
async function keysByNode(): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const node of cluster.nodes) {
    const redis = new Redis(node.url);
    try {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await redis.scan(cursor, 'MATCH', `${PREFIX}:*`, 'COUNT', 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      out.set(node.port, keys);
    } finally {
      redis.disconnect();
    }
  }
  return out;
}

test('the ingest, three workers, the CLI and the board on a Redis Cluster of three masters', async () => {
  const dir = tempDir('changeq-cluster-');
  const file = join(dir, 'workers.toml');
  const toml = (names: string[]) =>
    `workers = ${JSON.stringify(names)}\n\n[defaults]\nconcurrency = 8\n`;
  writeFileSync(file, toml(BASE));
  const record = join(dir, 'calls.jsonl');
  const client = new MongoClient(mongo.uri);
  await client.connect();
  await sleep(1100); // START_AT has one-second resolution
  await client.db('warmup').collection('x').insertOne({});
  const from = (await client.db('admin').command({ hello: 1 })).operationTime as Timestamp;
  const env = {
    MONGODB_URI: mongo.uri,
    REDIS_URL: cluster.url,
    WORKERS_FILE: file,
    QUEUE_PREFIX: PREFIX,
    LOG_LEVEL: 'info',
  };
  const ingest = new Supervised('ingest', 'ingest', [], {
    ...env,
    WATCH: 'shop',
    START_AT: new Date(from.high * 1000).toISOString(),
    BATCH_SIZE: '100',
    MAX_AWAIT_TIME_MS: '200',
  });
  const worker = (name: string) =>
    new Supervised(name, 'worker', ['--name', name, '--handlers', recordingHandlersPath()], {
      ...env,
      CHANGEQ_RECORD_FILE: record,
    });
  const all = [ingest, ...BASE.map(worker)];
  try {
    await ingest.current.waitForLine(/change stream open/, 30_000);
    await writeChaos(mongo.uri, {
      operations: 200,
      documents: 60,
      collections: ['orders', 'users'],
      db: 'shop',
      writers: 2,
      seed: 11,
    });
    // A fourth name: handoff markers in the old queues, the new epoch in the ring, and every
    // document's next event (one updateMany each) held on its new owner until its old one is done.
    writeFileSync(file, toml(WORKERS));
    ingest.signal('SIGHUP');
    const changed = JSON.parse(await ingest.current.waitForLine(/ring changed/, 30_000)) as {
      markers: string[];
    };
    // The queues that got a handoff marker job (an idle one is marked done without one).
    const marked = new Set(changed.markers.map((queue) => queue.replace(/^\{(.*)\}$/, '$1')));
    all.push(worker('west'));
    for (const coll of ['orders', 'users']) {
      await client
        .db('shop')
        .collection(coll)
        .updateMany({}, { $inc: { v: 1 } });
    }

    const truth = await changesSince(client.db('shop'), from);
    const reader = new Cluster(
      cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
    );
    let epochs;
    try {
      // On the cluster the ring's key carries its own hash tag; this process names keys bare.
      const raw = await reader.get(`${PREFIX}:{ring}`);
      epochs = raw === null ? [] : decodeRing(raw, `${PREFIX}:{ring}`);
    } finally {
      reader.disconnect();
    }
    expect(epochs.map((epoch) => epoch.names)).toEqual([BASE, WORKERS]);
    const router = new RingRouter(epochs);
    // The test process names no cluster keys: planEvent's queue is the bare worker name.
    const expected = expectedJobs(truth, (event) =>
      planEvent(event, router).map((job) => ({ worker: job.queue, jobId: job.jobId })),
    );
    expect(new Set(expected.map((job) => job.worker)).size).toBe(4);
    const report = await waitForDeliveries(expected, new CallLog(record), all, 60_000);
    expect(report.orderViolations.slice(0, 5)).toEqual([]);
    expect(report.unexpected.slice(0, 5)).toEqual([]);
    expect(report.reruns).toBe(0);

    // Each worker's keys (its queues, the ingest's watermarks in them, its lease) on one master
    // only, in the slot of its hash tag; the three queues on at least two masters.
    const byNode = await keysByNode();
    const nodesOf = (worker: string) =>
      [...byNode].filter(([, keys]) => keys.some((key) => key.includes(`{${worker}}`)));
    const seed = new Redis(cluster.nodes[0]!.url);
    try {
      for (const worker of WORKERS) {
        const holding = nodesOf(worker);
        expect(
          holding.map(([port]) => port),
          worker,
        ).toHaveLength(1);
        const keys = holding[0]![1].filter((key) => key.includes(`{${worker}}`));
        expect(keys).toContain(`${PREFIX}:{${worker}}:meta`);
        expect(keys.some((key) => key.startsWith(`${PREFIX}:{${worker}}:changeq-wm:`))).toBe(true);
        expect(keys).toContain(`${PREFIX}:worker:{${worker}}:fence`);
        // Every old name lost documents to west: its checkpoint of epoch 2 passed.
        if (BASE.includes(worker)) expect(keys).toContain(`${PREFIX}:worker:{${worker}}:handoff:2`);
        const slots = new Set(
          await Promise.all(keys.map((key) => seed.cluster('KEYSLOT', key) as Promise<number>)),
        );
        expect(slots.size, worker).toBe(1);
      }
    } finally {
      seed.disconnect();
    }
    const masters = new Set(WORKERS.map((worker) => nodesOf(worker)[0]![0]));
    expect(masters.size).toBeGreaterThanOrEqual(2);

    // The CLI's status and the board's queue list, on the same cluster.
    const status = startApp('cli', ['status', '--json'], env);
    const { code } = await status.closed;
    expect(code, status.stderr()).toBe(0);
    const report2 = JSON.parse(status.stdout()) as {
      ingest: { running: boolean | null };
      workers: { name: string; queue: string; counts: Record<string, number> }[];
    };
    // The ingest's named connection (CLIENT LIST) shows on the node the CLI asks.
    expect(report2.ingest.running).toBe(true);
    expect(report2.workers.map((w) => w.name).sort()).toEqual([...WORKERS].sort());
    const completed = Object.fromEntries(report2.workers.map((w) => [w.name, w.counts.completed]));
    for (const name of WORKERS) {
      // Its events, and the handoff marker of epoch 2 where there was one.
      const events = expected.filter((job) => job.worker === name).length;
      expect(completed[name], name).toBe(events + (marked.has(name) ? 1 : 0));
    }

    const board = startApp('board', [], { ...env, BOARD_PORT: '0' });
    try {
      const line = await board.waitForLine(/Bull Board listening on/);
      const port = /"url":"https?:\/\/[^"]*?:(\d+)\//.exec(line)?.[1];
      const response = await fetch(`http://127.0.0.1:${port}/api/queues`);
      expect(response.status).toBe(200);
      const { queues } = (await response.json()) as {
        queues: { name: string; counts: Record<string, number> }[];
      };
      expect(queues.map((q) => q.name).sort()).toEqual(
        WORKERS.flatMap((w) => [`{${w}}`, `{${w}}.dead`]).sort(),
      );
      for (const worker of WORKERS) {
        expect(queues.find((q) => q.name === `{${worker}}`)?.counts.completed).toBe(
          completed[worker],
        );
      }
    } finally {
      await board.stop();
    }
  } finally {
    await Promise.all(all.map((p) => p.stop()));
    await client.close();
  }
}, 120_000);
