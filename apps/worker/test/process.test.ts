/** The worker as a process: start-up errors, graceful shutdown, shutdown timeout. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { enqueue } from './helpers/events.js';
import { freePort, waitFor, workersFile } from '@changeq/testkit';
import { APP_DIR, RECORDING_HANDLERS, startWorkerProcess } from './helpers/process.js';
import { buildScenario, callsOf, missing, orderViolation, seeded } from './helpers/scenario.js';

const WORKERS = `workers = ["alpha", "bravo"]
[defaults]
concurrency = 4
attempts = 3
backoff_ms = 20
max_backoff_ms = 100
timeout_ms = 10000
`;

describe('worker process', () => {
  let server: RunningRedis;
  let redis: Redis;
  const workersToml = workersFile(WORKERS);

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
    redis.on('error', () => undefined); // the Redis restart test stops the server on purpose
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });

  const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    startWorkerProcess(args, {
      REDIS_URL: server.url,
      WORKERS_FILE: workersToml,
      REC_REDIS_URL: server.url,
      ...env,
    });

  it('bad settings and unreachable servers: one line naming the problem and the fix, exit 2', async () => {
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['--bogus'], {}, /Unknown option '--bogus'.*Fix: run with --help/],
      [['--name', 'alpha', '--concurrency', 'lots'], {}, /--concurrency must be a whole number/],
      [
        ['--name', 'alpha', '--dead-letter', 'maybe'],
        {},
        /--dead-letter must be "block" or "skip"/,
      ],
      [['--name', 'zed'], {}, /worker "zed" is not in .*\(its names: alpha, bravo\)/],
      [[], {}, /no worker name given/],
      [['--name', 'alpha'], { REDIS_URL: '' }, /REDIS_URL is not set/],
      [['--name', 'alpha', '--handlers', '/nowhere/h.mjs'], {}, /\/nowhere\/h\.mjs does not exist/],
      [['--name', 'alpha'], { MONGODB_URI: '' }, /MONGODB_URI is not set/],
      // Issue 12: the example handlers' MongoParseError, and a prefix the ingest refuses.
      [
        ['--name', 'alpha'],
        { MONGODB_URI: 'mongodb://127.0.0.1:1/?tls=maybe' },
        /MONGODB_URI="mongodb:\/\/127\.0\.0\.1:1\/\?tls=maybe" is refused by the MongoDB driver: tls\/ssl must be either "true" or "false"/,
      ],
      [
        ['--name', 'alpha'],
        { MONGODB_URI: 'mongodb://127.0.0.1:1/?bogus=1' },
        /option bogus is not supported/,
      ],
      [['--name', 'alpha'], { QUEUE_PREFIX: 'a:b' }, /QUEUE_PREFIX="a:b" holds ":"/],
      [
        ['--name', 'alpha', '--handlers', RECORDING_HANDLERS],
        { REDIS_URL: 'SERVER/99' },
        /REDIS_URL selects database 99, which Redis at redis:\/\/127\.0\.0\.1:\d+\/99 does not have \(it has databases 0 to 15\)/,
      ],
      [
        ['--name', 'alpha', '--handlers', RECORDING_HANDLERS],
        { REDIS_URL: 'redis://127.0.0.1:PORT', CONNECT_TIMEOUT_MS: '500' },
        /cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+/,
      ],
    ];
    // Side by side: each is a process of its own that ends by itself.
    const results = await Promise.all(
      cases.map(async ([args, env]) => {
        const extra: NodeJS.ProcessEnv = { ...env };
        if (extra.REDIS_URL?.startsWith('SERVER')) {
          extra.REDIS_URL = extra.REDIS_URL.replace('SERVER', server.url);
        }
        if (extra.REDIS_URL?.includes('PORT')) {
          extra.REDIS_URL = extra.REDIS_URL.replace('PORT', String(await freePort()));
        }
        const p = run(args, extra);
        const { code } = await p.exited;
        return { code, text: p.output().trim() };
      }),
    );
    results.forEach(({ code, text }, index) => {
      const [args, env, pattern] = cases[index]!;
      const what = `${JSON.stringify(args)} ${JSON.stringify(env)}: ${text}`;
      expect(code, what).toBe(2);
      expect(text.split('\n'), what).toHaveLength(1);
      expect(text, what).toMatch(/^changeq-worker: .*Fix: /);
      expect(text, what).toMatch(pattern);
      expect(text, what).not.toMatch(/\n\s+at /);
    });
  });

  it('SIGTERM: takes no new jobs, finishes those in flight, releases the lease, exits 0', async () => {
    const scenario = buildScenario(8, 10, seeded(5));
    await redis.flushdb();
    await enqueue(redis, scenario.events, () => 'alpha');
    const first = run(['--name', 'alpha', '--handlers', RECORDING_HANDLERS], {
      REC_SLEEP_FIXED_MS: '150',
    });
    await waitFor(
      async () => (await redis.keys('rec:calls:*')).length >= 4,
      () => first.output(),
      15_000,
    );
    process.kill(first.pid, 'SIGTERM');
    const { code } = await first.exited;
    expect(code).toBe(0);
    expect(await redis.exists('changeq:worker:alpha:lease')).toBe(0);
    // Every handler call that started finished its job; the jobs fetched ahead and not started
    // stay active, for the next process to take over in their order.
    const queue = new Queue('alpha', { connection: redis, prefix: 'changeq' });
    const done = await queue.getCompletedCount();
    let calls = 0;
    for (const doc of scenario.byDoc.keys()) calls += (await callsOf(redis, doc)).length;
    expect(done).toBe(calls);
    expect(done).toBeLessThan(scenario.events.length);
    // The next process takes over at once (the lease was released) and finishes, in order.
    const second = run(['--name', 'alpha', '--handlers', RECORDING_HANDLERS]);
    await second.waitForLine(/"msg":"active: this process holds the lease/, 5_000);
    expect(second.output()).toMatch(/recovered \d+ job\(s\) left active/);
    await waitFor(
      async () => (await queue.getCompletedCount()) === scenario.events.length,
      async () => JSON.stringify(await queue.getJobCounts()),
      20_000,
    );
    for (const doc of scenario.byDoc.keys()) {
      const recorded = await callsOf(redis, doc);
      expect(orderViolation(recorded)).toBeUndefined();
      expect(missing(recorded, 10)).toEqual([]);
    }
    await queue.close();
  });

  it('SIGTERM with handlers still running at the timeout: aborts them, the next process reruns them first', async () => {
    const scenario = buildScenario(4, 5, seeded(6));
    await redis.flushdb();
    await enqueue(redis, scenario.events, () => 'alpha');
    const first = run(
      ['--name', 'alpha', '--handlers', RECORDING_HANDLERS, '--shutdown-timeout-ms', '200'],
      { REC_SLEEP_FIXED_MS: '60000', LOG_LEVEL: 'info' },
    );
    await first.waitForLine(/"msg":"active: this process holds the lease/);
    const queue = new Queue('alpha', { connection: redis, prefix: 'changeq' });
    await waitFor(
      async () => (await queue.getActiveCount()) >= 4,
      () => first.output(),
      10_000,
    );
    const started = Date.now();
    process.kill(first.pid, 'SIGTERM');
    const { code } = await first.exited;
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(first.output()).toMatch(/handlers still running at the shutdown timeout were aborted/);
    expect(await queue.getActiveCount()).toBeGreaterThanOrEqual(4);
    expect(await queue.getCompletedCount()).toBe(0);
    const second = run(['--name', 'alpha', '--handlers', RECORDING_HANDLERS]);
    await second.waitForLine(/recovered \d+ job\(s\) left active by the previous process/, 5_000);
    await waitFor(
      async () => (await queue.getCompletedCount()) === scenario.events.length,
      async () => JSON.stringify(await queue.getJobCounts()),
      20_000,
    );
    for (const doc of scenario.byDoc.keys()) {
      const recorded = await callsOf(redis, doc);
      expect(orderViolation(recorded)).toBeUndefined();
      expect(recorded.map((c) => c.n)).toEqual([1, 2, 3, 4, 5]);
    }
    await queue.close();
  });

  it('an outage longer than the lease: the lease is lost, and taken again once Redis is back', async () => {
    const scenario = buildScenario(60, 100, seeded(11));
    await redis.flushdb();
    await enqueue(redis, scenario.events.slice(0, 30), () => 'alpha');
    const httpPort = await freePort();
    const worker = run(['--name', 'alpha', '--handlers', RECORDING_HANDLERS], {
      REC_SLEEP_FIXED_MS: '2',
      HTTP_PORT: String(httpPort),
      // A 4 s lease (the default 10 s): given up 2.4 s into the outage (0.6 of the TTL without
      // a renewal), and the outage lasts 2 s longer.
      LEASE_TTL_MS: '4000',
    });
    const metrics = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    await waitFor(
      async () => {
        const c = await queueCounts(redis);
        return c.waiting === 0 && c.active === 0;
      },
      () => worker.output(),
      15_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 300)); // idle: waiting on the marker
    await server.kill('SIGKILL');
    await worker.waitForLine(/lease lost/, 20_000);
    // While Redis is away the metrics tell the truth: not active, no lease; the process is live.
    const during = await metrics();
    expect(during).toMatch(/changeq_worker_lease_held\{worker="alpha"\} 0/);
    expect(during).toMatch(/changeq_worker_state\{worker="alpha",state="active"\} 0/);
    expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status).toBe(503);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await server.restart();
    await enqueue(redis, scenario.events.slice(30), () => 'alpha');
    const queue = new Queue('alpha', { connection: redis, prefix: 'changeq' });
    await waitFor(
      async () => {
        for (const doc of scenario.byDoc.keys()) {
          if (missing(await callsOf(redis, doc), 100).length > 0) return false;
        }
        return true;
      },
      async () => JSON.stringify(await queue.getJobCounts()) + worker.output().slice(-3000),
      30_000,
    );
    for (const doc of scenario.byDoc.keys()) {
      expect(orderViolation(await callsOf(redis, doc))).toBeUndefined();
    }
    expect(worker.output()).toMatch(
      /active: this process holds the lease[^]*lease lost[^]*active: this process holds the lease/,
    );
    expect(await metrics()).toMatch(/changeq_worker_lease_held\{worker="alpha"\} 1/);
    await queue.close();
  }, 90_000);

  it('a handler calling process.exit(0): logged with its caller, graceful stop, lease released, exit 1', async () => {
    await redis.flushdb();
    const scenario = buildScenario(1, 1, seeded(3));
    await enqueue(redis, scenario.events, () => 'alpha');
    const worker = run([
      '--name',
      'alpha',
      '--handlers',
      `${APP_DIR}/test/fixtures/exit-handler.mjs`,
    ]);
    const { code } = await worker.exited;
    expect(code).toBe(1);
    expect(worker.output()).toMatch(/process\.exit\(\) was called while the worker was running/);
    expect(worker.output()).toMatch(/"caller":"at handle \(file:[^"]*exit-handler\.mjs/);
    // The event was not completed (the handler did not finish): the next process runs it again.
    const queue = new Queue('alpha', { connection: redis, prefix: 'changeq' });
    expect(await queue.getJobCounts('completed')).toEqual({ completed: 0 });
    await queue.close();
    // The lease is released at once: status does not list a dead process as active.
    expect(await redis.exists('changeq:worker:alpha:lease')).toBe(0);
  });

  it('a handlers module whose top-level await never settles: one line naming it, exit 2', async () => {
    const worker = run([
      '--name',
      'alpha',
      '--handlers',
      `${APP_DIR}/test/fixtures/never-loads.mjs`,
    ]);
    const { code } = await worker.exited;
    const text = worker.output().trim();
    expect(code).toBe(2);
    expect(text.split('\n')).toHaveLength(1);
    expect(text).toMatch(/never-loads\.mjs never finished loading: a top-level await.*Fix: /);
  });

  it('rides out a Redis restart: logs the outage once, reconnects, and finishes in order', async () => {
    const scenario = buildScenario(6, 15, seeded(9));
    await redis.flushdb();
    await enqueue(redis, scenario.events, () => 'alpha');
    const worker = run(['--name', 'alpha', '--handlers', RECORDING_HANDLERS], {
      REC_SLEEP_FIXED_MS: '30',
    });
    await waitFor(
      async () => (await redis.keys('rec:calls:*')).length >= 3,
      () => worker.output(),
      15_000,
    );
    await server.kill('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await server.restart();
    await worker.waitForLine(/Redis connection restored/, 20_000);
    const queue = new Queue('alpha', { connection: redis, prefix: 'changeq' });
    await waitFor(
      async () => {
        for (const doc of scenario.byDoc.keys()) {
          if (missing(await callsOf(redis, doc), 15).length > 0) return false;
        }
        return true;
      },
      async () => JSON.stringify(await queue.getJobCounts()) + worker.output().slice(-2000),
      30_000,
    );
    for (const doc of scenario.byDoc.keys()) {
      expect(orderViolation(await callsOf(redis, doc))).toBeUndefined();
    }
    const text = worker.output();
    expect(text.match(/Redis connection lost \(changeq-worker:alpha\)/g)).toHaveLength(1);
    expect(text.match(/Redis connection restored \(changeq-worker:alpha\)/g)).toHaveLength(1);
    expect(text).not.toMatch(/Unhandled error event/);
    await queue.close();
  });
});

async function queueCounts(redis: Redis) {
  const queue = new Queue('alpha', { connection: redis, prefix: 'changeq' });
  try {
    return await queue.getJobCounts();
  } finally {
    await queue.close();
  }
}
