/**
 * Credentials and access (issue 12): every process — ingest, worker, board and the CLI's
 * commands — does its real work against Redis with a password (requirepass), as an ACL user
 * holding only the commands changeq needs (docs/operations.md), and over TLS with a test CA and
 * client certificates; MongoDB with SCRAM-SHA-256 credentials in MONGODB_URI. The passwords
 * hold `/`, `@`, `:` and `%`, and no output of any run — stdout and stderr of every process,
 * /metrics and /readyz, the board's API, and the error lines of wrong passwords and unreachable
 * servers — holds one of them, as given or percent-encoded.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { redisConnectionOptions } from '@changeq/shared';
import { startMongo, startRedis, type RunningMongo, type RunningRedis } from '@changeq/stack';
import { redisAclRules } from '@changeq/store';
import {
  freePort,
  freePorts,
  startApp,
  tempDir,
  waitFor,
  type App,
  type TestProcess,
} from '@changeq/testkit';

const HANDLERS = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'failing-handlers.mjs');

/** Odd passwords: '/', '@', ':', '%' (and '%41', which a double decoding would turn into 'A'). */
const SECRETS = {
  redis: 'Rd2024/pa@ss:w%41rd',
  acl: 'Acl/9@q:%zz-pw',
  mongo: 'Mg2024/p@ss:w%0rd',
};
/** How a password may leak: as given, percent-encoded, or with its specials removed. */
const leakForms = (secret: string) => [
  secret,
  encodeURIComponent(secret),
  ...secret.split(/[/@:%]/).filter((part) => part.length >= 4),
];

let mongo: RunningMongo;
let mongoUri: string;
const outputs: { what: string; text: string }[] = [];
const record = (what: string, text: string) => outputs.push({ what, text });

beforeAll(async () => {
  mongo = await startMongo({ auth: { user: 'app', password: SECRETS.mongo } });
  mongoUri = mongo.uri;
  expect(mongoUri).toContain(encodeURIComponent(SECRETS.mongo)); // real credentials, encoded
}, 60_000);
afterAll(async () => {
  await mongo?.stop();
});

/** Runs a CLI command to its end and keeps its output. */
async function cli(args: string[], env: NodeJS.ProcessEnv) {
  const run = startApp('cli', args, env);
  const { code } = await run.closed;
  record(`changeq ${args.join(' ')}`, run.output());
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

async function body(what: string, url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers });
  const text = await response.text();
  record(what, text);
  return { status: response.status, text };
}

function stopAndRecord(what: string, process: TestProcess) {
  return process.stop().then(() => record(what, process.output()));
}

interface Scenario {
  name: string;
  start: () => Promise<RunningRedis>;
  /** REDIS_URL and any REDIS_TLS_* for changeq's processes. */
  env: (redis: RunningRedis) => NodeJS.ProcessEnv;
  /** Wrong settings of this kind of server, and the line each gives. */
  failures?: (redis: RunningRedis) => [App, string[], NodeJS.ProcessEnv, RegExp][];
}

const PREFIX = 'cred';

const scenarios: Scenario[] = [
  {
    name: 'Redis with requirepass',
    start: () => startRedis({ password: SECRETS.redis }),
    env: (redis) => ({ REDIS_URL: redis.url }),
  },
  {
    name: 'Redis as an ACL user holding only the commands changeq needs, on its prefix',
    start: () =>
      startRedis({
        password: SECRETS.redis,
        users: [{ name: 'changeq', password: SECRETS.acl, rules: redisAclRules(PREFIX) }],
      }),
    env: (redis) => ({ REDIS_URL: redis.urlFor({ name: 'changeq', password: SECRETS.acl }) }),
  },
  {
    name: 'Redis over TLS (rediss://, a test CA, client certificates) with a password',
    start: () => startRedis({ password: SECRETS.redis, tls: { clientCertificates: true } }),
    env: (redis) => ({ REDIS_URL: redis.url, ...redis.tls!.env }),
    failures: (redis) => [
      [
        'cli',
        ['status'],
        { REDIS_TLS_CA: '' },
        /the TLS certificate of Redis at rediss:\/\/:\*\*\*@127\.0\.0\.1:\d+ does not check out \(self-signed certificate in certificate chain\)\. Fix: set REDIS_TLS_CA/,
      ],
      [
        'worker',
        ['--name', 'solo', '--handlers', HANDLERS],
        { REDIS_TLS_CERT: '', REDIS_TLS_KEY: '' },
        /if the server wants client certificates \(tls-auth-clients\), set REDIS_TLS_CERT and REDIS_TLS_KEY/,
      ],
      [
        'board',
        [],
        { REDIS_URL: redis.url.replace('rediss:', 'redis:') },
        /REDIS_TLS_CA and REDIS_TLS_CERT and REDIS_TLS_KEY are set, but the Redis URL starts with redis:\/\//,
      ],
    ],
  },
];

describe.each(scenarios.map((s, i) => [s.name, s, i] as const))('%s', (_name, scenario, index) => {
  let redis: RunningRedis;
  beforeAll(async () => {
    redis = await scenario.start();
  }, 60_000);
  afterAll(async () => {
    await redis?.stop();
  });

  test('the ingest, a worker, the board and the CLI do their work; MongoDB with SCRAM-SHA-256', async () => {
    const db = `cred${index}`;
    const dir = tempDir('changeq-credentials-');
    const workers = join(dir, 'workers.toml');
    writeFileSync(workers, 'workers = ["solo"]\n[defaults]\nattempts = 1\n');
    const heal = join(dir, 'healed');
    const env: NodeJS.ProcessEnv = {
      ...scenario.env(redis),
      MONGODB_URI: mongoUri,
      WORKERS_FILE: workers,
      QUEUE_PREFIX: PREFIX,
      INGEST_ID: db,
      WATCH: `${db}.orders`,
      HEAL_FILE: heal,
      LOG_LEVEL: 'debug', // the most lines a run can print
      CONNECT_TIMEOUT_MS: '15000',
    };
    // The test's own view of the queues, with the same settings.
    const peek = new Redis({ ...redisConnectionOptions(env.REDIS_URL!, env), lazyConnect: true });
    const completed = () => peek.zcard(`${PREFIX}:solo:completed`);

    const [ingestPort, workerPort] = await freePorts(2);
    const ingest = startApp('ingest', [], { ...env, HTTP_PORT: String(ingestPort) });
    const worker = startApp(
      'worker',
      ['--name', 'solo', '--handlers', HANDLERS, '--http-port', String(workerPort)],
      env,
    );
    const board = startApp('board', [], {
      ...env,
      BOARD_PORT: '0',
      BOARD_USER: 'ops',
      BOARD_PASSWORD: 'board-pw',
    });
    const ingestUrl = `http://127.0.0.1:${ingestPort}`;
    const workerUrl = `http://127.0.0.1:${workerPort}`;
    await waitFor(
      async () => (await fetch(`${ingestUrl}/readyz`).catch(() => null))?.status === 200,
      'the ingest to be ready',
      60_000,
    );
    await waitFor(
      async () => (await fetch(`${workerUrl}/readyz`).catch(() => null))?.status === 200,
      'the worker to hold its lease',
      60_000,
    );
    const boardUrl = /listening on (http:\/\/[^\s"]+)/.exec(
      await board.waitForLine(/Bull Board listening on/, 30_000),
    )![1]!;

    const client = new MongoClient(mongoUri);
    try {
      const orders = client.db(db).collection('orders');
      await orders.insertMany([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4, fail: true }]);
      await peek.connect();
      await waitFor(async () => (await completed()) >= 3, 'three events handled', 60_000);

      const status = await cli(['status', '--json'], env);
      expect(status.code, status.stderr).toBe(0);
      const report = JSON.parse(status.stdout) as {
        ingest: { running: boolean | null };
        workers: { name: string; counts: { completed?: number }; deadLetters: number }[];
      };
      await waitFor(
        async () =>
          (JSON.parse((await cli(['status', '--json'], env)).stdout) as typeof report).workers[0]!
            .deadLetters === 1,
        'the failing event to become a dead letter',
        60_000,
        500,
      );
      expect(report.ingest.running).toBe(true);
      // The commands that only read, side by side.
      const [text, token, dlq] = await Promise.all([
        cli(['status'], env),
        cli(['token', 'show'], env),
        cli(['dlq', 'list', '--worker', 'solo', '--json'], env),
      ]);
      expect(text.code, text.stderr).toBe(0);
      expect(token.code, token.stderr).toBe(0);
      expect(dlq.code, dlq.stderr).toBe(0);
      writeFileSync(heal, '');
      expect((await cli(['dlq', 'retry', '--worker', 'solo', '--all'], env)).code).toBe(0);
      await waitFor(async () => (await completed()) >= 4, 'the retried dead letter', 60_000);
      const pre = await cli(['preimages', 'enable', `${db}.orders`], env);
      expect(pre.code, pre.stderr).toBe(0);

      for (const path of ['/metrics', '/readyz', '/healthz']) {
        expect((await body(`ingest ${path}`, `${ingestUrl}${path}`)).status).toBe(200);
        expect((await body(`worker ${path}`, `${workerUrl}${path}`)).status).toBe(200);
      }
      const auth = { authorization: `Basic ${Buffer.from('ops:board-pw').toString('base64')}` };
      const queues = await body('board /api/queues', `${boardUrl}api/queues`, auth);
      expect(queues.status).toBe(200);
      expect(queues.text).toContain('"solo"');

      // With the ingest stopped: the commands that rewrite its position.
      await stopAndRecord('ingest', ingest);
      const at = new Date(Date.now() - 60_000).toISOString();
      expect((await cli(['token', 'set', '--at', at, '--yes'], env)).code).toBe(0);
      expect((await cli(['token', 'reset', '--yes'], env)).code).toBe(0);
      const resync = await cli(['resync', '--yes'], env);
      expect(resync.code, resync.stderr).toBe(0);
      await waitFor(async () => (await completed()) >= 8, 'the resync copy handled', 60_000);
    } finally {
      await client.close();
      peek.disconnect();
      await Promise.all([
        ingest.stop().then(() => record('ingest', ingest.output())),
        stopAndRecord('worker', worker),
        stopAndRecord('board', board),
      ]);
    }
    expect(worker.output()).not.toMatch(/NOPERM/);
    // Nothing changeq sent was refused, not even what a process shrugs off.
    const admin = new Redis({
      ...redisConnectionOptions(redis.url, redis.tls?.env ?? {}),
      lazyConnect: true,
    });
    try {
      await admin.connect();
      expect(await admin.acl('LOG')).toEqual([]);
    } finally {
      admin.disconnect();
    }
  });

  test('wrong passwords and unreachable servers: one line each, no password', async () => {
    const env = scenario.env(redis);
    const url = env.REDIS_URL!;
    const wrong = url.replace(/:([^:@/]+)@127/, ':Wr0ng%2Fpw@127');
    expect(wrong).not.toBe(url);
    const dead = url.replace(/:(\d+)$/, `:${await freePort()}`);
    const base = { ...env, MONGODB_URI: mongoUri, QUEUE_PREFIX: PREFIX, CONNECT_TIMEOUT_MS: '800' };
    const runs: [App, string[], NodeJS.ProcessEnv, RegExp][] = [
      [
        'cli',
        ['status'],
        { REDIS_URL: wrong },
        /refused the user name or password of REDIS_URL \(WRONGPASS/,
      ],
      ['cli', ['status'], { REDIS_URL: dead }, /cannot reach Redis at/],
      ['worker', ['--name', 'solo', '--handlers', HANDLERS], { REDIS_URL: wrong }, /WRONGPASS/],
      ['ingest', [], { REDIS_URL: wrong }, /WRONGPASS/],
      ['board', [], { REDIS_URL: wrong, BOARD_PORT: '0' }, /WRONGPASS/],
      [
        'cli',
        ['preimages', 'enable', 'a.b'],
        { MONGODB_URI: mongoUri.replace(encodeURIComponent(SECRETS.mongo), 'Wr0ng') },
        /MongoDB at .* refused the user name or password of MONGODB_URI/,
      ],
      [
        'ingest',
        [],
        { MONGODB_URI: mongoUri.replace(`:${mongo.port}/`, `:${await freePort()}/`) },
        /cannot reach MongoDB at mongodb:\/\/app:\*\*\*@127\.0\.0\.1/,
      ],
      ...(scenario.failures?.(redis) ?? []),
    ];
    const dir = tempDir('changeq-credentials-');
    const workers = join(dir, 'workers.toml');
    writeFileSync(workers, 'workers = ["solo"]\n');
    // All at once: each waits on its own server's refusal or its own connect timeout.
    const finished = await Promise.all(
      runs.map(async ([app, args, extra, pattern]) => {
        const run = startApp(app, args, { ...base, WORKERS_FILE: workers, ...extra });
        const { code } = await run.closed;
        record(`${app} ${args.join(' ')} (failing)`, run.output());
        return { run, code, pattern };
      }),
    );
    for (const { run, code, pattern } of finished) {
      expect(code, run.output()).toBe(2);
      expect(run.output()).toMatch(pattern);
      expect(run.stderr().trim().split('\n').at(-1)).toMatch(/ Fix: /);
    }
  });
});

test('no output of any run above holds a password', () => {
  expect(outputs.length).toBeGreaterThan(50);
  const forms = Object.values(SECRETS).flatMap(leakForms);
  for (const { what, text } of outputs) {
    for (const form of forms) {
      expect(
        text.includes(form),
        `${what} printed ${JSON.stringify(form)}:\n${text.slice(0, 4000)}`,
      ).toBe(false);
    }
  }
});
