/**
 * Redis without persistence, killed and restarted empty while the ingest runs (issue 12, item 2):
 * the ingest notices its position is gone, records the loss in the token key and stops naming
 * what was lost and the ways on; restarted by a supervisor into that Redis, it refuses with the
 * same words instead of starting from "now". An operator's start time is the way on, and loses
 * nothing.
 */
import { Redis } from 'ioredis';
import { MongoClient, Timestamp } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { redisServerBinary, startMongo, type RunningMongo } from '@changeq/stack';
import { PositionStore } from '@changeq/store';
import {
  freePort,
  startProcess,
  tempDir,
  waitFor,
  workersFile,
  type TestProcess,
} from '@changeq/testkit';
import { clusterTimeNow, groundTruth, readQueues, startIngest, storedToken } from './helpers.js';

const WORKERS = ['alpha', 'bravo'];
let mongo: RunningMongo;

beforeAll(async () => {
  mongo = await startMongo();
});
afterAll(async () => {
  await mongo?.stop();
});

const lastLine = (process: TestProcess) => process.stderr().trim().split('\n').pop() ?? '';

/** Debian's redis-server with no persistence at all: a restart comes back empty. */
async function startVolatileRedis(port: number): Promise<TestProcess> {
  const server = startProcess(redisServerBinary(), [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--appendonly',
    'no',
    '--save',
    '',
    '--dir',
    tempDir('changeq-volatile-redis-'),
  ]);
  await server.waitForLine(/Ready to accept connections/);
  return server;
}

test('Redis restarted empty under a running ingest: it stops, says what was lost, and never starts again from "now"', async () => {
  const port = await freePort();
  let redisServer = await startVolatileRedis(port);
  const redisUrl = `redis://127.0.0.1:${port}`;
  const env = {
    MONGODB_URI: mongo.uri,
    REDIS_URL: redisUrl,
    WORKERS_FILE: workersFile(`workers = ["alpha", "bravo"]\n`),
    WATCH: 'lost.c',
    MAX_AWAIT_TIME_MS: '100',
  };
  const client = new MongoClient(mongo.uri);
  const coll = client.db('lost').collection('c');
  try {
    const from = await clusterTimeNow(mongo.uri);
    // The operator's start time below is a whole second: the position Redis loses must lie in a
    // later second than this server's first entry, since a start before a server's history is
    // refused (ChangeStreamHistoryLost, as MongoDB refuses a start before its oplog's first entry).
    const nextSecond = (from.getHighBitsUnsigned() + 1) * 1000;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, nextSecond - Date.now())));
    let ingest = startIngest(env);
    await ingest.waitForLine(/change stream open/);
    await coll.insertMany(Array.from({ length: 20 }, (_, i) => ({ i })));
    await waitFor(
      async () => (await readQueues(redisUrl, 'changeq', WORKERS)).length === 20,
      '20 jobs',
    );
    const before = await storedToken(redisUrl);
    expect(before).toContain('token');

    // Redis dies and comes back empty while changes go on.
    await redisServer.kill('SIGKILL');
    await coll.insertMany(Array.from({ length: 10 }, (_, i) => ({ during: i })));
    redisServer = await startVolatileRedis(port);
    await coll.insertMany(Array.from({ length: 10 }, (_, i) => ({ after: i })));

    const { code } = await ingest.exited;
    expect(code, ingest.output()).toBe(2);
    const line = lastLine(ingest);
    expect(line).toMatch(
      /Redis lost this ingest's position: the token key "changeq:ingest:default:token" held the resume token at \S+ \(token [0-9A-F]+…\), and on \S+ nothing/,
    );
    expect(line).toMatch(
      /never restarts from "now" on its own\. Fix: .*changeq token set --at \S+Z`.*changeq resync/,
    );
    // Only its first start (into a Redis that was empty from the start) began at START_AT.
    expect(ingest.output().match(/starting from START_AT/g)).toHaveLength(1);

    const redis = new Redis(redisUrl);
    try {
      const store = new PositionStore(redis, 'changeq', 'default');
      const stored = await store.loadStart();
      expect(stored?.kind).toBe('lost');

      // A supervisor restarts it into that Redis: same refusal, nothing enqueued from "now".
      ingest = startIngest(env);
      expect((await ingest.exited).code).toBe(2);
      expect(lastLine(ingest)).toBe(line);
      expect(await readQueues(redisUrl, 'changeq', WORKERS)).toHaveLength(0);

      // The operator's way on (what `changeq token set --at` stores): a replay from the lost
      // position's second, which enqueues every change since, the ones Redis lost included.
      const replayFrom = /token set --at (\S+)`/.exec(line)![1]!;
      const at = new Date(replayFrom);
      await store.saveStartMarker({
        startAt: new Timestamp({ t: at.getTime() / 1000, i: 0 }),
        savedAt: new Date(),
        reason: 'test: changeq token set --at',
      });
      ingest = startIngest(env);
      const truth = (await groundTruth(mongo.uri, from, [{ $match: { 'ns.db': 'lost' } }])).filter(
        (event) => (event.clusterTime?.getHighBitsUnsigned() ?? 0) >= at.getTime() / 1000,
      );
      expect(truth.length).toBeGreaterThanOrEqual(20);
      await waitFor(
        async () => (await readQueues(redisUrl, 'changeq', WORKERS)).length === truth.length,
        async () =>
          `the ${truth.length} changes since the lost position (jobs: ${
            (await readQueues(redisUrl, 'changeq', WORKERS)).length
          }; the ingest said: ${ingest.output().slice(-3000)})`,
      );
      const jobs = await readQueues(redisUrl, 'changeq', WORKERS);
      const tokens = new Set(jobs.map((job) => (job.event._id as { _data: string })._data));
      expect(tokens.size).toBe(jobs.length);
      for (const event of truth)
        expect(tokens.has((event._id as { _data: string })._data)).toBe(true);
      await ingest.stop('SIGTERM');
    } finally {
      redis.disconnect();
    }
  } finally {
    await client.close();
  }
});
