import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MongoClient } from 'mongodb';
import { startStack, type RunningStack } from '@changeq/stack';
import {
  endProcesses,
  seededRandom,
  waitFor,
  workersFile,
  writeChaos,
  type TestProcess,
} from '@changeq/testkit';
import { RecordingConsumer, assertExactlyOnceInOrder } from './chaos.js';
import {
  clusterTimeNow,
  groundTruth,
  readQueues,
  startIngest,
  storedTokenData,
} from './helpers.js';

const WORKERS = ['alpha', 'bravo', 'charlie'];
const COLLECTIONS = ['a', 'b', 'c'];

const workersToml = () => workersFile(`workers = [${WORKERS.map((w) => `"${w}"`).join(', ')}]\n`);

/**
 * Runs the chaos writer while `fault` strikes at random moments, then checks that every change
 * event became exactly one job, in the queue its routing names, in oplog order.
 */
async function runScenario(
  stack: RunningStack,
  options: {
    seed: number;
    operations: number;
    faults: number;
    fault: (ingest: () => TestProcess) => Promise<void>;
    tolerateWriteErrors?: boolean;
    /** CHANGEQ_FAULT_POINTS for the ingest: self-inflicted SIGKILLs in the commit windows. */
    faultPoints?: string;
    /**
     * Check the queues' contents instead of consuming them. A plain BullMQ worker may itself
     * reorder jobs around a Redis restart (a fetched job whose reply was lost stays "active"
     * until the stall check) — the worker app's problem, not the ingest's.
     */
    inspectOnly?: boolean;
    /** Stop injecting after this many faults even if the writes go on. */
    maxFaults?: number;
  },
) {
  const processes: TestProcess[] = [];
  const db = `chaos${options.seed}`;
  const from = await clusterTimeNow(stack.mongodbUri).catch((error: Error) => {
    throw new Error(`reading the cluster time failed: ${error.message}`, { cause: error });
  });
  const env = {
    MONGODB_URI: stack.mongodbUri,
    REDIS_URL: stack.redisUrl,
    WORKERS_FILE: workersToml(),
    WATCH: COLLECTIONS.map((c) => `${db}.${c}`).join(','),
    START_AT: new Date(from.high * 1000).toISOString(),
    INGEST_ID: `seed${options.seed}`,
    QUEUE_PREFIX: `p${options.seed}`,
    // Completed jobs are removed at once, so a re-added event would show as a second delivery.
    KEEP_COMPLETED_COUNT: '0',
    BATCH_SIZE: '200',
    MAX_AWAIT_TIME_MS: '200',
    CHANGEQ_FAULT_POINTS: options.faultPoints ?? '',
  };
  const consumer = options.inspectOnly
    ? null
    : new RecordingConsumer(stack.redisUrl, env.QUEUE_PREFIX, WORKERS);
  let current = startIngest(env);
  processes.push(current);
  let finished = false;
  let crashes = 0;
  let fatal: string | null = null;
  // Restart the ingest whenever it dies (killed from outside, or by its own fault points).
  const supervisor = (async () => {
    while (!finished) {
      const { code, signal } = await current.exited;
      if (finished) break;
      if (signal === null) {
        fatal = `ingest exited with code ${code}:\n${current.output().slice(-3000)}`;
        break;
      }
      crashes += 1;
      current = startIngest(env);
      processes.push(current);
    }
  })();
  try {
    const random = seededRandom(options.seed);
    let faults = 0;
    let writing = true;
    const writes = writeChaos(stack.mongodbUri, {
      operations: options.operations,
      documents: 500,
      collections: COLLECTIONS,
      db,
      writers: 4,
      seed: options.seed,
      tolerateErrors: options.tolerateWriteErrors ?? false,
    })
      .catch((error: Error) => {
        throw new Error(`the writer failed: ${error.message}`, { cause: error });
      })
      .finally(() => (writing = false));
    while (
      (writing || faults < options.faults) &&
      faults < (options.maxFaults ?? Infinity) &&
      !fatal
    ) {
      await new Promise((resolve) => setTimeout(resolve, 150 + random() * 600));
      await options
        .fault(() => current)
        .catch((error: Error) => {
          throw new Error(`injecting fault ${faults + 1} failed: ${error.message}`, {
            cause: error,
          });
        });
      faults += 1;
    }
    await writes;
    if (fatal) throw new Error(fatal);
    const truth = await groundTruth(stack.mongodbUri, from, [{ $match: { 'ns.db': db } }]).catch(
      (error: Error) => {
        throw new Error(`reading the ground truth failed: ${error.message}`, { cause: error });
      },
    );
    // Writes that failed while a server restarted are simply not in the history.
    expect(truth.length).toBeGreaterThanOrEqual(
      options.operations * (options.tolerateWriteErrors ? 0.5 : 0.99),
    );
    const lastToken = (truth[truth.length - 1]!._id as { _data: string })._data;
    await waitFor(
      async () => {
        if (fatal) throw new Error(fatal);
        return (
          ((await storedTokenData(stack.redisUrl, env.QUEUE_PREFIX, env.INGEST_ID)) ?? '') >=
          lastToken.toUpperCase()
        );
      },
      'the ingest to store a token at or after the last event',
      60_000,
    );
    const expectedJobs = (seen: number) => seen >= truth.length;
    await waitFor(
      async () =>
        expectedJobs(
          consumer
            ? consumer.total
            : (await readQueues(stack.redisUrl, env.QUEUE_PREFIX, WORKERS)).length,
        ),
      `the consumer to see ${truth.length} events`,
      60_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 500)); // a late duplicate would show now
    if (fatal) throw new Error(fatal);
    const seen = consumer ? consumer.seen : await queuedTokens(stack.redisUrl, env.QUEUE_PREFIX);
    assertExactlyOnceInOrder(truth, seen, WORKERS);
    return { events: truth.length, faults, crashes, processes: processes.length };
  } catch (error) {
    // The last ingest's log tells why it did not catch up.
    console.error(`last ingest output:\n${current.output().slice(-4000)}`);
    throw error;
  } finally {
    finished = true;
    await consumer?.close();
    await endProcesses(processes);
    await supervisor;
  }
}

/** What each queue holds, in queue order (for runs without a consumer). */
async function queuedTokens(redisUrl: string, prefix: string) {
  const jobs = await readQueues(redisUrl, prefix, WORKERS);
  return new Map(
    WORKERS.map((queue) => [
      queue,
      jobs
        .filter((job) => job.queue === queue)
        .map((job) => ({ token: (job.event._id as { _data: string })._data })),
    ]),
  );
}

describe('exactly-once enqueue', () => {
  let stack: RunningStack;
  beforeAll(async () => {
    stack = await startStack({ redis: { appendfsync: 'always' } });
    // START_AT has a resolution of one second and the server's history begins when it starts:
    // make sure the second the scenarios start from is fully inside that history (cluster time
    // only moves with writes, so write once after a second has passed).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const client = new MongoClient(stack.mongodbUri);
    await client.db('warmup').collection('x').insertOne({ at: new Date() });
    await client.close();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  test('survives SIGKILL of the ingest at random moments (6+ times)', async () => {
    const result = await runScenario(stack, {
      seed: 1,
      // Enough writes for the kills to strike while streaming; many more kills: npm run chaos
      // (row ingest-sigkill).
      operations: 4_000,
      faults: 6,
      maxFaults: 10,
      faultPoints: 'after-queue-commit=0.01,before-token-save=0.02',
      fault: async (ingest) => {
        await ingest().kill('SIGKILL');
      },
    });
    expect(result.faults).toBeGreaterThanOrEqual(6);
    console.log(
      `SIGKILL scenario: ${result.events} events, ${result.faults} kills, ${result.processes} ingest processes`,
    );
  }, 300_000);

  test('survives restarts of Redis (AOF on) under load', async () => {
    const result = await runScenario(stack, {
      seed: 2,
      operations: 4_000,
      faults: 3,
      // More restarts: npm run chaos (row redis-kill-1s).
      maxFaults: 3,
      inspectOnly: true,
      fault: async () => {
        await stack.redis.kill('SIGKILL');
        await new Promise((resolve) => setTimeout(resolve, 300));
        await stack.redis.restart();
      },
    });
    console.log(`Redis restart scenario: ${result.events} events, ${result.faults} restarts`);
  }, 300_000);

  test('survives restarts of MongoDB under load', async () => {
    const result = await runScenario(stack, {
      seed: 3,
      operations: 4_000,
      faults: 3,
      // More restarts: npm run chaos (row mongo-restart).
      maxFaults: 4,
      tolerateWriteErrors: true,
      fault: async () => {
        await stack.mongo.kill('SIGKILL');
        await stack.mongo.restart();
      },
    });
    console.log(`MongoDB restart scenario: ${result.events} events, ${result.faults} restarts`);
  }, 300_000);

  test('survives dropped connections and resumable errors, labelled by the server or not', async () => {
    const admin = new MongoClient(stack.mongodbUri);
    await admin.connect();
    const failPoint = (name: string, mode: unknown, data?: Record<string, unknown>) =>
      admin.db('admin').command({ configureFailPoint: name, mode, ...(data ? { data } : {}) });
    const entered = async (name: string) =>
      ((await failPoint(name, 'off')) as { count: number }).count;
    const before = {
      failCommand: await entered('failCommand'),
      afterCheckout: await entered('failGetMoreAfterCursorCheckout'),
    };
    let round = 0;
    try {
      const result = await runScenario(stack, {
        seed: 4,
        operations: 4_000,
        faults: 9,
        maxFaults: 9, // three of each kind
        fault: async () => {
          round += 1;
          // On the ingest's own connections only (its appName), as faults between it and
          // MongoDB would strike, in turn:
          const appName = 'changeq-ingest-seed4';
          switch (round % 3) {
            case 0:
              // a dropped connection;
              await failPoint(
                'failCommand',
                { times: 2 },
                {
                  failCommands: ['getMore', 'aggregate'],
                  closeConnection: true,
                  appName,
                },
              );
              break;
            case 1:
              // a getMore failing while it holds its cursor (a shutdown, a step-down): the server
              // labels it ResumableChangeStreamError and the driver resumes on its own;
              await failPoint(
                'failGetMoreAfterCursorCheckout',
                { times: 2 },
                {
                  errorCode: 91,
                  appName,
                },
              );
              break;
            default:
              // the same codes raised before the cursor is checked out, which carry no label:
              // the driver gives up and the ingest reopens the stream from its stored position.
              await failPoint(
                'failCommand',
                { times: 1 },
                {
                  failCommands: ['getMore'],
                  errorCode: 11600,
                  appName,
                },
              );
          }
        },
      });
      console.log(`fail point scenario: ${result.events} events, ${result.faults} injections`);
      // Each kind of fault did strike.
      expect(await entered('failCommand')).toBeGreaterThan(before.failCommand);
      expect(await entered('failGetMoreAfterCursorCheckout')).toBeGreaterThan(before.afterCheckout);
    } finally {
      await failPoint('failCommand', 'off').catch(() => undefined);
      await failPoint('failGetMoreAfterCursorCheckout', 'off').catch(() => undefined);
      await admin.close();
    }
  }, 300_000);
});
