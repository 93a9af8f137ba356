/**
 * Transactions and events over 16 MB, through real processes (an ingest and three workers, the
 * official driver, the test server, Redis):
 *
 * - transactions of 1 to 500 events across three collections, among writes outside any
 *   transaction: every event of a transaction reaches its handler with the transaction's id, its
 *   index and the transaction's event count (whichever worker runs it), the others with none;
 * - an update event of about 18 MB (a 9 MB document with its pre-image) reaches the handler
 *   whole, once; with SPLIT_LARGE_EVENTS=false the ingest stops and says why and what to do.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startStack, type RunningStack } from '@changeq/stack';
import { startApp, tempDir, waitFor, workersFile, type TestProcess } from '@changeq/testkit';

const HANDLERS = join(
  dirname(fileURLToPath(import.meta.url)),
  'fixtures',
  'transaction-handlers.mjs',
);
const WORKERS = ['alpha', 'bravo', 'charlie'];
const MB = 1024 * 1024;

interface Call {
  pos: string;
  w: string;
  ns: string;
  op: string;
  txn: { id: string; index: number; count: number } | null;
  split: unknown;
  before?: string;
  after?: string;
}

let stack: RunningStack;
let client: MongoClient;
beforeAll(async () => {
  stack = await startStack();
  client = new MongoClient(stack.mongodbUri);
  await client.connect();
});
afterAll(async () => {
  await client?.close();
  await stack?.stop();
});

function calls(record: string): Call[] {
  let text = '';
  try {
    text = readFileSync(record, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Call);
}

/**
 * An ingest of `db` and a worker process for each of `names` (workers.toml's names), recording
 * handler calls in a file; `run: false` starts none of the workers.
 */
async function startSystem(
  db: string,
  ingestEnv: NodeJS.ProcessEnv = {},
  names: readonly string[] = WORKERS,
  run = true,
) {
  const record = join(tempDir('changeq-txn-'), 'calls.jsonl');
  const env = {
    MONGODB_URI: stack.mongodbUri,
    REDIS_URL: stack.redisUrl,
    WORKERS_FILE: workersFile(
      `workers = ${JSON.stringify(names)}\n\n[defaults]\nconcurrency = 16\n`,
    ),
    QUEUE_PREFIX: db,
    LOG_LEVEL: 'info',
  };
  const ingest = startApp('ingest', [], {
    ...env,
    WATCH: db,
    BATCH_SIZE: '50', // a 500-event transaction spans ten of the server's batches
    MAX_AWAIT_TIME_MS: '100',
    FULL_DOCUMENT_BEFORE_CHANGE: 'whenAvailable',
    ...ingestEnv,
  });
  const workers = (run ? names : []).map((name) =>
    startApp('worker', ['--name', name, '--handlers', HANDLERS], { ...env, RECORD_FILE: record }),
  );
  await ingest.waitForLine(/change stream open/, 30_000);
  return { ingest, workers, record, all: [ingest, ...workers] as TestProcess[] };
}

test('every event of a transaction of 1 to 500 events carries its id, index and count', async () => {
  const db = 'e2e_txn';
  const system = await startSystem(db);
  try {
    const sizes = [1, 2, 3, 10, 64, 137, 500];
    const colls = ['orders', 'lines', 'stock'].map((name) => client.db(db).collection(name));
    let outside = 0;
    // Writes outside transactions run beside them (their events fall between transactions).
    let writing = true;
    const others = (async () => {
      while (writing) {
        await colls[outside % 3]!.insertOne({ outside });
        outside += 1;
      }
    })();
    for (const [t, size] of sizes.entries()) {
      const session = client.startSession();
      await session.withTransaction(async () => {
        for (let c = 0; c < 3; c++) {
          const docs = Array.from({ length: size }, (_, i) => ({ t, i })).filter(
            (_, i) => i % 3 === c,
          );
          if (docs.length > 0) await colls[c]!.insertMany(docs, { session });
        }
      });
      await session.endSession();
    }
    writing = false;
    await others;
    const total = sizes.reduce((a, b) => a + b, 0) + outside;
    await waitFor(() => calls(system.record).length >= total, 'every event handled', 60_000);

    const record = calls(system.record);
    expect(new Set(record.map((call) => call.pos)).size).toBe(total); // each once
    expect(record.filter((call) => call.txn === null)).toHaveLength(outside);
    const byTxn = new Map<string, Call[]>();
    for (const call of record) {
      if (call.txn) byTxn.set(call.txn.id, [...(byTxn.get(call.txn.id) ?? []), call]);
    }
    expect([...byTxn.values()].map((group) => group.length).sort((a, b) => a - b)).toEqual(sizes);
    for (const group of byTxn.values()) {
      const count = group.length;
      expect(group.every((call) => call.txn?.count === count)).toBe(true);
      // Index i is the i-th of the transaction's events in stream order.
      const inOrder = [...group].sort((a, b) => (a.pos < b.pos ? -1 : 1));
      expect(inOrder.map((call) => call.txn?.index)).toEqual(inOrder.map((_, i) => i));
    }
    const largest = [...byTxn.values()].find((group) => group.length === 500)!;
    expect(new Set(largest.map((call) => call.ns)).size).toBe(3);
    expect(new Set(largest.map((call) => call.w)).size).toBe(WORKERS.length);
  } finally {
    await Promise.all(system.all.map((p) => p.stop()));
  }
});

async function largeUpdate(db: string): Promise<void> {
  const d = client.db(db);
  await d.createCollection('big', { changeStreamPreAndPostImages: { enabled: true } });
  await d.collection('big').insertOne({ _id: 1 as never, value: 'a'.repeat(9 * MB) });
  // The event holds the old value (its pre-image) and the new one: about 18 MB.
  await d.collection('big').updateOne({ _id: 1 as never }, { $set: { value: 'b'.repeat(9 * MB) } });
  await d.collection('big').insertOne({ _id: 2 as never, after: true });
}

test('an event over 16 MB reaches the handler whole; without splitting the ingest stops and says why', async () => {
  const system = await startSystem('e2e_large', {}, ['alpha']);
  try {
    await largeUpdate('e2e_large');
    await waitFor(() => calls(system.record).length >= 3, 'the three events handled', 60_000);
    const record = calls(system.record);
    expect(record.map((call) => call.op)).toEqual(['insert', 'update', 'insert']);
    expect(record[1]).toMatchObject({ split: null, before: `ax${9 * MB}`, after: `bx${9 * MB}` });
  } finally {
    await Promise.all(system.all.map((p) => p.stop()));
  }

  const refused = await startSystem(
    'e2e_nosplit',
    { SPLIT_LARGE_EVENTS: 'false' },
    ['alpha'],
    false,
  );
  try {
    await largeUpdate('e2e_nosplit');
    const exit = await refused.ingest.exited;
    expect(exit.code).not.toBe(0);
    const output = refused.ingest.output();
    expect(output).toMatch(
      /larger than 16 MB \(BSONObjectTooLarge\) and the stream does not split it/,
    );
    expect(output).toMatch(/set SPLIT_LARGE_EVENTS=true/);
  } finally {
    await Promise.all(refused.all.map((p) => p.stop()));
  }
});
