import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MongoClient } from 'mongodb';
import { startStack, type RunningStack } from '@changeq/stack';
import { RecordingConsumer, assertExactlyOnceInOrder, seededRandom, writeChaos } from './chaos.js';
import {
  clusterTimeNow,
  groundTruth,
  startIngest,
  stopAll,
  storedToken,
  waitFor,
  type IngestProcess,
} from './helpers.js';

const WORKERS = ['alpha', 'bravo', 'charlie'];
const DB = 'chaos';
const COLLECTIONS = ['a', 'b', 'c'];

function workersFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'changeq-ingest-'));
  const file = join(dir, 'workers.toml');
  writeFileSync(file, `workers = [${WORKERS.map((w) => `"${w}"`).join(', ')}]\n`);
  return file;
}

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
    fault: (ingest: () => IngestProcess) => Promise<void>;
    tolerateWriteErrors?: boolean;
  },
) {
  const processes: IngestProcess[] = [];
  const from = await clusterTimeNow(stack.mongodbUri);
  const env = {
    MONGODB_URI: stack.mongodbUri,
    REDIS_URL: stack.redisUrl,
    WORKERS_FILE: workersFile(),
    WATCH: COLLECTIONS.map((c) => `${DB}.${c}`).join(','),
    START_AT: new Date(from.high * 1000).toISOString(),
    INGEST_ID: `seed${options.seed}`,
    QUEUE_PREFIX: `p${options.seed}`,
    // Completed jobs are removed at once, so a re-added event would show as a second delivery.
    KEEP_COMPLETED_COUNT: '0',
    BATCH_SIZE: '200',
    MAX_AWAIT_TIME_MS: '200',
  };
  const consumer = new RecordingConsumer(stack.redisUrl, env.QUEUE_PREFIX, WORKERS);
  let current = startIngest(env);
  processes.push(current);
  const restart = () => {
    current = startIngest(env);
    processes.push(current);
    return current;
  };
  try {
    const random = seededRandom(options.seed);
    let faults = 0;
    let writing = true;
    const writes = writeChaos(stack.mongodbUri, {
      operations: options.operations,
      documents: 500,
      collections: COLLECTIONS,
      db: DB,
      writers: 4,
      seed: options.seed,
      tolerateErrors: options.tolerateWriteErrors ?? false,
    }).finally(() => (writing = false));
    while (writing || faults < options.faults) {
      await new Promise((resolve) => setTimeout(resolve, 150 + random() * 600));
      await options.fault(() => current);
      faults += 1;
      if (faults >= options.faults && !writing) break;
      if (current.child.exitCode !== null || current.child.signalCode !== null) restart();
    }
    await writes;
    if (current.child.exitCode !== null || current.child.signalCode !== null) restart();
    const truth = await groundTruth(stack.mongodbUri, from, [{ $match: { 'ns.db': DB } }]);
    expect(truth.length).toBeGreaterThanOrEqual(options.operations * 0.9);
    const lastToken = (truth[truth.length - 1]!._id as { _data: string })._data;
    await waitFor(
      async () =>
        (await storedToken(stack.redisUrl, env.QUEUE_PREFIX, env.INGEST_ID))?.includes(lastToken) ??
        false,
      'the ingest to store the last event’s token',
      60_000,
    );
    await waitFor(
      () => consumer.total >= truth.length,
      `the consumer to see ${truth.length} events`,
      60_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 500)); // a late duplicate would show now
    assertExactlyOnceInOrder(truth, consumer.seen, WORKERS);
    return { events: truth.length, faults, processes: processes.length };
  } finally {
    await consumer.close();
    await stopAll(processes);
  }
}

describe('exactly-once enqueue', () => {
  let stack: RunningStack;
  beforeAll(async () => {
    stack = await startStack({ redis: { appendfsync: 'always' } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  test('survives SIGKILL of the ingest at random moments (10+ times)', async () => {
    const result = await runScenario(stack, {
      seed: 1,
      operations: 20_000,
      faults: 10,
      fault: async (ingest) => {
        await ingest().kill('SIGKILL');
      },
    });
    expect(result.faults).toBeGreaterThanOrEqual(10);
    console.log(
      `SIGKILL scenario: ${result.events} events, ${result.faults} kills, ${result.processes} ingest processes`,
    );
  }, 300_000);

  test('survives restarts of Redis (AOF on) under load', async () => {
    const result = await runScenario(stack, {
      seed: 2,
      operations: 6_000,
      faults: 3,
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
      operations: 6_000,
      faults: 3,
      tolerateWriteErrors: true,
      fault: async () => {
        await stack.mongo.kill('SIGKILL');
        await stack.mongo.restart();
      },
    });
    console.log(`MongoDB restart scenario: ${result.events} events, ${result.faults} restarts`);
  }, 300_000);

  test('survives dropped connections and resumable errors injected with the failCommand fail point', async () => {
    const admin = new MongoClient(stack.mongodbUri);
    await admin.connect();
    let round = 0;
    try {
      const result = await runScenario(stack, {
        seed: 4,
        operations: 6_000,
        faults: 6,
        fault: async () => {
          round += 1;
          // Alternate a closed connection with a resumable server error, both on getMore.
          const data =
            round % 2 === 0
              ? { failCommands: ['getMore', 'aggregate'], closeConnection: true }
              : {
                  failCommands: ['getMore'],
                  errorCode: 91,
                  errorLabels: ['ResumableChangeStreamError'],
                };
          await admin
            .db('admin')
            .command({ configureFailPoint: 'failCommand', mode: { times: 2 }, data });
        },
      });
      console.log(`fail point scenario: ${result.events} events, ${result.faults} injections`);
    } finally {
      await admin
        .db('admin')
        .command({ configureFailPoint: 'failCommand', mode: 'off' })
        .catch(() => undefined);
      await admin.close();
    }
  }, 300_000);
});
