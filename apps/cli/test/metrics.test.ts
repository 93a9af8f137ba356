/**
 * /metrics, /healthz and /readyz of real ingest and worker processes during a real run: the
 * backlog grows while no worker runs and falls to zero once they do, the ingest's lag grows
 * while backpressure holds it and falls when it catches up, counters match what was written.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MongoClient } from 'mongodb';
import { startStack, type RunningStack } from '@changeq/stack';
import { freePort, startApp, waitFor, workersFile } from '@changeq/testkit';
import { HANDLERS, Scrape, answers, readyz } from './helpers.js';

const WORKERS = workersFile(`workers = ["alpha", "bravo"]
[defaults]
concurrency = 4
attempts = 2
backoff_ms = 10
max_backoff_ms = 50
`);

let stack: RunningStack;
let mongo: MongoClient;

beforeAll(async () => {
  stack = await startStack();
  mongo = new MongoClient(stack.mongodbUri);
  await mongo.connect();
});
afterAll(async () => {
  await mongo?.close();
  await stack?.stop();
});

const base = () => ({
  MONGODB_URI: stack.mongodbUri,
  REDIS_URL: stack.redisUrl,
  WORKERS_FILE: WORKERS,
  HANDLERS,
});

async function startWorker(name: string, env: Record<string, string>) {
  const port = await freePort();
  const worker = startApp('worker', ['--name', name, '--http-port', String(port)], {
    ...base(),
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(() => answers(url), `worker ${name} to serve ${url}`);
  return { worker, url };
}

describe('metrics and health of a real run', () => {
  test('ingest: 503 until it holds its stream; backlog, lag, backpressure and counters follow the run', async () => {
    const env = { QUEUE_PREFIX: 'm1', INGEST_ID: 'm1', WATCH: 'metrics.c', BACKLOG_LIMIT: '5' };
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;

    // Redis is down: the ingest answers /healthz but is not ready.
    await stack.redis.kill('SIGKILL');
    startApp('ingest', [], {
      ...base(),
      ...env,
      HTTP_PORT: String(port),
      CONNECT_TIMEOUT_MS: '120000',
      MAX_AWAIT_TIME_MS: '100',
    });
    await waitFor(() => answers(url), 'the ingest to serve /healthz');
    const before = await readyz(url);
    expect(before.status).toBe(503);
    expect(before.body.missing.join('\n')).toMatch(/^redis: /m);
    expect(before.body.missing.join('\n')).toMatch(/^stream: state starting/m);

    await stack.redis.restart();
    await waitFor(async () => (await readyz(url)).status === 200, 'the ingest to be ready');
    const idle = await Scrape.of(url);
    expect(idle.value('changeq_ingest_state', { state: 'streaming' })).toBe(1);
    expect(idle.sum('changeq_queue_jobs', { state: 'waiting' })).toBe(0);

    // No worker runs: every event waits, and past BACKLOG_LIMIT the ingest pauses.
    const docs = Array.from({ length: 40 }, (_, n) => ({ n }));
    await mongo.db('metrics').collection('c').insertMany(docs);
    const events = (s: Scrape) =>
      s.sum('changeq_ingest_events_total', { namespace: 'metrics.c', operation: 'insert' });
    await waitFor(
      async () => events(await Scrape.of(url)) === docs.length,
      'every insert enqueued',
    );
    await waitFor(
      async () =>
        (await Scrape.of(url)).sum('changeq_queue_jobs', { queue: '*', state: 'waiting' }) ===
        docs.length,
      'the backlog to show every event',
    );
    const paused = await Scrape.of(url);
    expect(paused.value('changeq_ingest_state', { state: 'backpressure' })).toBe(1);
    expect(paused.value('changeq_ingest_backpressure_pauses_total')).toBeGreaterThanOrEqual(1);
    expect(paused.value('changeq_ingest_jobs_added_total')).toBe(docs.length);
    expect((await readyz(url)).status).toBe(200); // backpressure is a state of a healthy ingest
    expect(paused.value('changeq_worker_live', { worker: 'alpha' })).toBe(0);
    const lagPaused = paused.value('changeq_ingest_lag_seconds');
    let lagLater = lagPaused;
    await waitFor(
      async () =>
        (lagLater = (await Scrape.of(url)).value('changeq_ingest_lag_seconds')) > lagPaused + 1,
      'the lag to grow while the ingest is paused',
    );

    // Workers drain the queues: the backlog falls to 0, the ingest reads on, its lag falls.
    const workers = await Promise.all(['alpha', 'bravo'].map((name) => startWorker(name, env)));
    await waitFor(
      async () =>
        (await Scrape.of(url)).sum('changeq_queue_jobs', { queue: '*', state: 'waiting' }) === 0,
      'the backlog to fall to 0',
    );
    await waitFor(
      async () => (await Scrape.of(url)).value('changeq_ingest_lag_seconds') < lagLater,
      'the lag to fall once the ingest reads again',
    );
    await waitFor(
      async () =>
        (await Scrape.of(url)).value('changeq_ingest_state', { state: 'streaming' }) === 1,
      'the ingest to stream again',
    );
    const handled = async () => {
      const scrapes = await Promise.all(workers.map((w) => Scrape.of(w.url)));
      return scrapes;
    };
    await waitFor(
      async () =>
        (await handled()).reduce(
          (sum, s) => sum + s.sum('changeq_worker_jobs_finished_total', { result: 'completed' }),
          0,
        ) === docs.length,
      'the workers to complete every event',
    );
    const scrapes = await handled();
    const calls = scrapes.reduce(
      (sum, s) =>
        sum +
        s.sum('changeq_worker_handler_duration_seconds_count', {
          namespace: 'metrics.c',
          operation: 'insert',
        }),
      0,
    );
    expect(calls).toBe(docs.length);
    for (const [index, scrape] of scrapes.entries()) {
      const name = ['alpha', 'bravo'][index]!;
      expect(scrape.value('changeq_worker_lease_held', { worker: name })).toBe(1);
      expect(scrape.sum('changeq_worker_handler_failures_total')).toBe(0);
      expect(scrape.value('changeq_worker_blocked_documents', { worker: name })).toBe(0);
    }
    await waitFor(
      async () => (await Scrape.of(url)).sum('changeq_worker_live') === 2,
      'the ingest to see both workers live',
    );
    const final = await Scrape.of(url);
    expect(events(final)).toBe(docs.length);
    expect(final.value('changeq_ingest_backpressure_seconds_total')).toBeGreaterThan(0);
    expect(final.value('changeq_ingest_token_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(final.samples('changeq_process_cpu_user_seconds_total')).toHaveLength(1);
  });

  test('worker: /readyz follows the lease; failures, retries and dead letters are counted', async () => {
    const env = { QUEUE_PREFIX: 'm2', INGEST_ID: 'm2', WATCH: 'metrics2.c' };
    const ingest = startApp('ingest', [], { ...base(), ...env, MAX_AWAIT_TIME_MS: '100' });
    await waitFor(
      () => ingest.output().includes('change stream open'),
      'the ingest to open its stream',
    );

    const first = await startWorker('alpha', env);
    await waitFor(
      async () => (await readyz(first.url)).status === 200,
      'the first alpha to be ready',
    );
    const second = await startWorker('alpha', env);
    await waitFor(
      async () =>
        (await readyz(second.url)).body.missing.some((m) => m.startsWith('lease: standby')),
      'the second alpha to be on standby',
    );
    const standby = await readyz(second.url);
    expect(standby.status).toBe(503);
    expect(standby.body.missing.join('\n')).toContain(`held by pid ${first.worker.pid}`);
    expect((await Scrape.of(second.url)).value('changeq_worker_lease_held')).toBe(0);

    // Events of alpha that fail every attempt become dead letters.
    const collection = mongo.db('metrics2').collection('c');
    const bravo = await startWorker('bravo', env);
    await collection.insertMany(Array.from({ length: 12 }, (_, n) => ({ n, fail: true })));
    const dead = async () =>
      (await Scrape.of(first.url)).sum('changeq_worker_dead_letters_total') +
      (await Scrape.of(bravo.url)).sum('changeq_worker_dead_letters_total');
    await waitFor(async () => (await dead()) === 12, 'every failing event to be dead-lettered');
    for (const { url } of [first, bravo]) {
      const s = await Scrape.of(url);
      const deadHere = s.sum('changeq_worker_dead_letters_total', {
        namespace: 'metrics2.c',
        operation: 'insert',
      });
      // attempts = 2: each dead letter failed twice and was retried once.
      expect(s.sum('changeq_worker_handler_failures_total')).toBe(2 * deadHere);
      expect(s.sum('changeq_worker_retries_total')).toBe(deadHere);
      expect(s.sum('changeq_worker_handler_duration_seconds_count', { outcome: 'failed' })).toBe(
        2 * deadHere,
      );
      await waitFor(
        async () =>
          (await Scrape.of(url)).sum('changeq_queue_jobs', {
            queue: '*.dead',
            state: 'waiting',
          }) === deadHere,
        'the dead-letter queue count',
      );
    }

    // The active process stops: the standby takes the lease and becomes ready.
    await first.worker.stop('SIGTERM');
    await waitFor(
      async () => (await readyz(second.url)).status === 200,
      'the standby to take over',
    );
    expect((await Scrape.of(second.url)).value('changeq_worker_lease_held')).toBe(1);
  });

  test('a port in use stops the ingest and a worker with one line naming HTTP_PORT, exit 2', async () => {
    const taken = createServer();
    await new Promise<void>((res) => taken.listen(0, '127.0.0.1', res));
    const port = String((taken.address() as { port: number }).port);
    try {
      const env = { ...base(), QUEUE_PREFIX: 'm3', INGEST_ID: 'm3', HTTP_PORT: port };
      const apps = [startApp('ingest', [], env), startApp('worker', ['--name', 'alpha'], env)];
      for (const app of apps) {
        expect((await app.exited).code).toBe(2);
        const lines = app.output().trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(
          new RegExp(
            `cannot serve /metrics on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)\\. Fix: set HTTP_PORT`,
          ),
        );
      }
    } finally {
      taken.close();
    }
  });
});
