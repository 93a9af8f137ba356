/**
 * The product's promise end to end: writes in MongoDB become handler calls in the workers, every
 * event at least once, and per document never out of oplog order, while every process of the
 * system (the ingest and each worker) is killed with SIGKILL at random moments and restarted.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { MongoClient, ObjectId, type ChangeStreamDocument, type Timestamp } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startStack, type RunningStack } from '@changeq/stack';
import {
  changesSince,
  endProcesses,
  startApp,
  workersFile,
  type App,
  type TestProcess,
} from '@changeq/testkit';

const HANDLERS = join(
  dirname(fileURLToPath(import.meta.url)),
  'fixtures',
  'recording-handlers.mjs',
);
const NAMES = ['north', 'south'];

let stack: RunningStack;
beforeAll(async () => {
  stack = await startStack({ redis: { appendfsync: 'always' } });
});
afterAll(async () => {
  await stack?.stop();
});

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** A process of the system that is restarted whenever it dies, until stopped. */
class Supervised {
  current: TestProcess;
  restarts = 0;
  private stopped = false;
  private readonly started: TestProcess[] = [];

  constructor(
    readonly name: string,
    private readonly app: App,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.current = this.spawn();
  }

  private spawn(): TestProcess {
    const run = startApp(this.app, this.args, this.env);
    this.started.push(run);
    void run.exited.then(({ code, signal }) => {
      if (this.stopped) return;
      if (signal === null && code !== 0) {
        console.error(`${this.name} exited with code ${code}:\n${run.stderr().slice(-4000)}`);
      }
      this.restarts += 1;
      this.current = this.spawn();
    });
    return run;
  }

  kill(): void {
    void this.current.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await endProcesses(this.started);
  }
}

function docKey(event: ChangeStreamDocument): string {
  const { ns, documentKey } = event as unknown as {
    ns: { db: string; coll: string };
    documentKey: { _id: unknown };
  };
  return `${ns.db}.${ns.coll}:${JSON.stringify(documentKey._id)}`;
}

test('every event reaches a handler, in per-document oplog order, while every process is killed at random', async () => {
  const workersToml = workersFile(
    `workers = ${JSON.stringify(NAMES)}\n\n[defaults]\nconcurrency = 8\nattempts = 10\nbackoff_ms = 20\nmax_backoff_ms = 200\n`,
  );
  const client = new MongoClient(stack.mongodbUri);
  await client.connect();
  // The cluster time only moves with writes, and START_AT has one-second resolution.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await client.db('warmup').collection('x').insertOne({});
  const from = (await client.db('admin').command({ hello: 1 })).operationTime as Timestamp;
  const env = {
    PATH: process.env.PATH ?? '',
    MONGODB_URI: stack.mongodbUri,
    REDIS_URL: stack.redisUrl,
    WORKERS_FILE: workersToml,
    LOG_FORMAT: 'json',
    LOG_LEVEL: 'warn',
  };
  const ingest = new Supervised('ingest', 'ingest', [], {
    ...env,
    WATCH: 'e2e',
    START_AT: new Date(from.high * 1000).toISOString(),
    BATCH_SIZE: '100',
    MAX_AWAIT_TIME_MS: '200',
    CHANGEQ_FAULT_POINTS: 'after-queue-commit=0.01,before-token-save=0.01',
  });
  const workers = NAMES.map(
    (name) =>
      new Supervised(name, 'worker', ['--name', name, '--handlers', HANDLERS], {
        ...env,
        LEASE_TTL_MS: '2000',
        LOCK_DURATION_MS: '5000',
        E2E_REDIS_URL: stack.redisUrl,
        E2E_FAIL_RATE: '0.2',
        E2E_SLEEP_MAX_MS: '5',
      }),
  );
  const all = [ingest, ...workers];
  const redis = new Redis(stack.redisUrl);
  try {
    // The writes: inserts, updates, replaces and deletes over 150 documents in two collections.
    const random = seeded(42);
    const ids = Array.from({ length: 150 }, (_, n) =>
      n % 2 === 0 ? n : new ObjectId(n.toString(16).padStart(24, '0')),
    );
    const exists = new Set<number>();
    let writing = true;
    const writes = (async () => {
      for (let step = 0; step < 5000; step += 1) {
        const n = Math.floor(random() * ids.length);
        const coll = client.db('e2e').collection(n % 3 === 0 ? 'a' : 'b');
        const _id = ids[n] as never;
        if (!exists.has(n)) {
          await coll.insertOne({ _id, v: 0 });
          exists.add(n);
        } else if (random() < 0.85) {
          await coll.updateOne({ _id }, { $inc: { v: 1 } });
        } else {
          await coll.deleteOne({ _id });
          exists.delete(n);
        }
      }
    })().finally(() => (writing = false));
    let kills = 0;
    while (writing || kills < 10) {
      await new Promise((resolve) => setTimeout(resolve, 300 + random() * 700));
      all[Math.floor(random() * all.length)]!.kill();
      kills += 1;
    }
    await writes;

    // The server's own record of every change since `from`.
    const truth = await changesSince(client.db('e2e'), from);
    expect(truth.length).toBeGreaterThanOrEqual(5000);
    const expected = new Map<string, string[]>();
    for (const event of truth) {
      const key = docKey(event);
      expected.set(key, [...(expected.get(key) ?? []), (event._id as { _data: string })._data]);
    }

    // Wait until every event has a successful handler call.
    const calls = async () => {
      const seen = new Map<string, { position: string; attempt: number; ok: boolean }[]>();
      for (const key of expected.keys()) {
        const raw = await redis.lrange(`e2e:calls:${key}`, 0, -1);
        seen.set(
          key,
          raw.map((entry) => {
            const [position, attempt, result] = entry.split(':');
            return { position: position!, attempt: Number(attempt), ok: result === 'ok' };
          }),
        );
      }
      return seen;
    };
    const deadline = Date.now() + 120_000;
    let seen = await calls();
    const missing = () =>
      [...expected].reduce((sum, [key, positions]) => {
        const ok = new Set(
          seen
            .get(key)!
            .filter((c) => c.ok)
            .map((c) => c.position),
        );
        return sum + positions.filter((p) => !ok.has(p)).length;
      }, 0);
    while (missing() > 0) {
      if (Date.now() > deadline) throw new Error(`${missing()} events never reached a handler`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      seen = await calls();
    }

    for (const [key, positions] of expected) {
      const sequence = seen.get(key)!;
      // Never backwards: each call is at or after the previous one in oplog order.
      for (let i = 1; i < sequence.length; i += 1) {
        expect(
          sequence[i]!.position >= sequence[i - 1]!.position,
          `${key}: call ${i} goes back in oplog order`,
        ).toBe(true);
      }
      // Every event of the document, in order (repeats of one event after a crash are allowed).
      const distinctOk = sequence
        .filter((c) => c.ok)
        .map((c) => c.position)
        .filter((p, i, list) => p !== list[i - 1]);
      expect(distinctOk, key).toEqual(positions);
    }
    const restarts = all.map((p) => `${p.name} ${p.restarts}`).join(', ');
    console.log(
      `end to end: ${truth.length} events over ${expected.size} documents; ${kills} SIGKILLs from outside; restarts: ${restarts}`,
    );
    expect(all.reduce((sum, p) => sum + p.restarts, 0)).toBeGreaterThanOrEqual(10);
  } finally {
    redis.disconnect();
    await Promise.all(all.map((p) => p.stop()));
    await client.close();
  }
});
