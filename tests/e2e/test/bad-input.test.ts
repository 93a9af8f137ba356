/**
 * Bad input read alike by every process (issue 12): the ingest, the worker, the board and the CLI
 * share one parser per setting, so a value one of them takes the others take the same way, and a
 * value one refuses they all refuse with the same line.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startStack, type RunningStack } from '@changeq/stack';
import { freePort, startApp, waitFor, workersFile, type App } from '@changeq/testkit';

const HANDLERS = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'failing-handlers.mjs');

let stack: RunningStack;
beforeAll(async () => {
  stack = await startStack();
}, 60_000);
afterAll(async () => {
  await stack?.stop();
});

const WORKERS = workersFile('workers = ["solo"]\n');

/** Runs `app` to its end; returns its one error line without the program's name. */
async function refusal(app: App, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const run = startApp(app, args, {
    REDIS_URL: stack.redisUrl,
    MONGODB_URI: stack.mongodbUri,
    WORKERS_FILE: WORKERS,
    CONNECT_TIMEOUT_MS: '3000',
    ...env,
  });
  // A process that takes the value runs on: end it, and let the exit code tell.
  const timer = setTimeout(() => void run.kill(), 20_000);
  const { code } = await run.closed;
  clearTimeout(timer);
  const lines = run.output().trim().split('\n');
  expect(code, run.output()).toBe(2);
  expect(lines, run.output()).toHaveLength(1);
  return lines[0]!.replace(/^[\w-]+: /, '');
}

const EVERY: [App, string[]][] = [
  ['ingest', []],
  ['worker', ['--name', 'solo', '--handlers', HANDLERS]],
  ['board', []],
  ['cli', ['status']],
];

test('QUEUE_PREFIX="qp ": the ingest writes and the worker serves the same queue', async () => {
  const env = {
    REDIS_URL: stack.redisUrl,
    MONGODB_URI: stack.mongodbUri,
    WORKERS_FILE: WORKERS,
    QUEUE_PREFIX: 'qp ',
    WATCH: 'prefixes.orders',
  };
  const port = await freePort();
  const ingest = startApp('ingest', [], { ...env, HTTP_PORT: String(port) });
  const worker = startApp('worker', ['--name', 'solo', '--handlers', HANDLERS], env);
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200,
    'the ingest to be ready',
    60_000,
  );
  const client = new MongoClient(stack.mongodbUri);
  const redis = new Redis(stack.redisUrl);
  try {
    await client
      .db('prefixes')
      .collection('orders')
      .insertMany([1, 2, 3, 4, 5].map((n) => ({ n })));
    await waitFor(
      async () => (await redis.zcard('qp:solo:completed')) === 5,
      async () => `5 events handled; keys: ${(await redis.keys('qp*')).join(', ')}`,
      60_000,
    );
    expect(await redis.keys('qp :*')).toEqual([]);
    const status = startApp('cli', ['status', '--json'], env);
    await status.closed;
    expect(JSON.parse(status.stdout()).prefix).toBe('qp');
  } finally {
    redis.disconnect();
    await client.close();
    await Promise.all([ingest.stop(), worker.stop()]);
  }
});

test('QUEUE_PREFIX="a:b" is refused by every process with the same line', async () => {
  const lines = await Promise.all(
    EVERY.map(([app, args]) => refusal(app, args, { QUEUE_PREFIX: 'a:b' })),
  );
  expect(new Set(lines).size, lines.join('\n')).toBe(1);
  expect(lines[0]).toMatch(/^QUEUE_PREFIX="a:b" holds ":"; a prefix may only hold letters/);
});

test('a Redis database the server lacks (…/99) is refused by every process with the same line', async () => {
  const lines = await Promise.all(
    EVERY.map(([app, args]) => refusal(app, args, { REDIS_URL: `${stack.redisUrl}/99` })),
  );
  expect(new Set(lines).size, lines.join('\n')).toBe(1);
  expect(lines[0]).toBe(
    `REDIS_URL selects database 99, which Redis at ${stack.redisUrl}/99 does not have (it has databases 0 to 15). Fix: use a database number the server has in REDIS_URL (0 to 15), or raise "databases" in redis.conf`,
  );
});

test('a MongoDB URI the driver refuses is one line, the same in the ingest, the worker and the CLI', async () => {
  for (const uri of [
    `${stack.mongodbUri}&tls=maybe`,
    `${stack.mongodbUri}&bogus=1`,
    stack.mongodbUri.replace('mongodb://', 'mongodb://admin:p@ss/w0rd@'),
  ]) {
    const lines = await Promise.all([
      refusal('ingest', [], { MONGODB_URI: uri }),
      // The worker's example handlers keep a read model in MongoDB.
      refusal('worker', ['--name', 'solo'], { MONGODB_URI: uri }),
      refusal('cli', ['preimages', 'enable', 'a.b'], { MONGODB_URI: uri }),
    ]);
    expect(new Set(lines).size, lines.join('\n')).toBe(1);
    expect(lines[0]).toMatch(
      /^MONGODB_URI=".*" (is refused by the MongoDB driver|has a user name)/,
    );
    expect(lines[0]).not.toMatch(/w0rd|ss\/w/);
  }
});

test('START_AT and token set --at read dates alike: no roll-over, nothing a cluster time cannot hold', async () => {
  for (const [value, problem] of [
    ['2026-02-30', 'has the day 30, which 2026-02 does not have (it has 28 days)'],
    ['2106-02-07T06:28:16Z', 'is after 2106-02-07T06:28:15Z'],
  ] as const) {
    const ingest = await refusal('ingest', [], { START_AT: value });
    const cli = await refusal('cli', ['token', 'set', '--at', value, '--yes'], {});
    expect(ingest).toContain(`START_AT="${value}" ${problem}`);
    expect(cli).toContain(`--at="${value}" ${problem}`);
  }
});
