/**
 * The board as a process against a real Redis: start-up errors, basic authentication, what the
 * API lets an operator do, read-only mode, following workers.toml, an unreachable Redis and
 * shutdown.
 */
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { ObjectId } from 'mongodb';
import { encodeEvent } from '@changeq/shared';
import { eventJobName } from '@changeq/store';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { freePort, startApp, waitFor, workersFile } from '@changeq/testkit';
import { APP_ROOT, apiQueues, logLines, startBoardProcess } from './helpers.js';

const basic = (user: string, password: string) => ({
  Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});

describe('board process', () => {
  let redis: RunningRedis;
  let client: Redis;
  const workersToml = workersFile('workers = ["alpha", "bravo"]\n');

  beforeAll(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  const board = (env: NodeJS.ProcessEnv = {}) =>
    startBoardProcess({ REDIS_URL: redis.url, WORKERS_FILE: workersToml, ...env });

  /** Adds one job the way the ingest does (and, for `dead`, the way the worker parks a dead letter). */
  const addEvent = async (queueName: string, jobId: string, dead = false) => {
    const id = new ObjectId();
    const event = {
      _id: { _data: jobId },
      operationType: 'insert',
      ns: { db: 'shop', coll: 'orders' },
      documentKey: { _id: id },
      fullDocument: { _id: id, customer: 'Grace', total: 7 },
    };
    const data = encodeEvent(event, { ns: 'shop.orders', op: 'insert', doc: id.toHexString() });
    const queue = new Queue(queueName, { connection: client, prefix: 'changeq' });
    await queue.add(
      eventJobName('insert', 'shop.orders'),
      dead
        ? {
            ...data,
            deadLetter: {
              kind: 'dead',
              error: { message: 'planned failure' },
              attempts: 1,
              failedAt: new Date().toISOString(),
              originalQueue: queueName.replace(/\.dead$/, ''),
              originalJobId: jobId,
            },
          }
        : data,
      { jobId },
    );
    await queue.close();
    return id;
  };

  it.each([
    [{ REDIS_URL: '' }, /REDIS_URL is not set/],
    [
      { BOARD_HOST: '0.0.0.0' },
      /BOARD_HOST="0\.0\.0\.0" makes the board reachable .*set BOARD_USER/,
    ],
    [{ BOARD_HOST: '::', BOARD_USER: 'ops' }, /BOARD_USER is set but BOARD_PASSWORD is not/],
    [{ BOARD_PORT: '-1' }, /BOARD_PORT="-1" is out of range/],
    [{ BOARD_READ_ONLY: 'sometimes' }, /BOARD_READ_ONLY="sometimes" is not a boolean/],
    [
      { WORKERS_FILE: '/nowhere/workers.toml' },
      /the workers file \/nowhere\/workers\.toml does not exist/,
    ],
    [
      { WORKERS_FILE: workersFile('workers = ["alpha",\n  "no spaces"]\n') },
      /workers\.toml:2: worker name "no spaces" is not allowed/,
    ],
  ])('%j: one line naming the problem and the fix, exit 2', async (env, pattern) => {
    const run = startApp(
      'board',
      [],
      { REDIS_URL: redis.url, WORKERS_FILE: workersToml, ...env },
      { cwd: APP_ROOT },
    );
    const { code } = await run.exited;
    const text = run.output().trim();
    expect(code).toBe(2);
    expect(text.split('\n')).toHaveLength(1);
    expect(text).toMatch(/^changeq-board: .* Fix: /);
    expect(text).toMatch(pattern);
  });

  it('a port in use stops it with the fix', async () => {
    const taken = createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => taken.listen(port, '127.0.0.1', resolve));
    try {
      const run = startApp(
        'board',
        [],
        { REDIS_URL: redis.url, WORKERS_FILE: workersToml, BOARD_PORT: String(port) },
        { cwd: APP_ROOT },
      );
      expect((await run.exited).code).toBe(2);
      expect(run.output()).toMatch(
        new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use\\. Fix: .*BOARD_PORT`),
      );
    } finally {
      taken.close();
    }
  });

  it('on a non-loopback address: 401 without or with wrong credentials, 200 with the right ones', async () => {
    const run = await board({
      BOARD_HOST: '0.0.0.0',
      BOARD_USER: 'ops',
      BOARD_PASSWORD: 'pä:ss w',
    });
    expect(run.output()).toMatch(/"auth":"basic"/);
    for (const path of ['/', '/api/queues', '/static/favicon-32x32.png', '/queue/alpha']) {
      const none = await fetch(`${run.origin}${path}`);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm="changeq board"/);
      for (const [user, password] of [
        ['ops', 'pä:ss'],
        ['ops', 'pä:ss w '],
        ['OPS', 'pä:ss w'],
        ['', ''],
      ] as const) {
        const wrong = await fetch(`${run.origin}${path}`, { headers: basic(user, password) });
        expect(wrong.status, `${path} as ${user}:${password}`).toBe(401);
      }
      const right = await fetch(`${run.origin}${path}`, { headers: basic('ops', 'pä:ss w') });
      expect(right.status, path).toBe(200);
    }
  });

  it('slows down password guessing: after 10 failed sign-ins an address gets 429 and Retry-After', async () => {
    const run = await board({
      BOARD_HOST: '0.0.0.0',
      BOARD_USER: 'ops',
      BOARD_PASSWORD: 'right/p@ss:w%rd',
    });
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const wrong = await fetch(`${run.origin}/api/queues`, { headers: basic('ops', `guess${i}`) });
      statuses.push(wrong.status);
      if (wrong.status === 429) expect(Number(wrong.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    expect(statuses.filter((s) => s === 401)).toHaveLength(10);
    expect(statuses.slice(10).every((s) => s === 429)).toBe(true);
    // While the budget is spent even the right password is not checked (no oracle for guessers).
    const right = await fetch(`${run.origin}/api/queues`, {
      headers: basic('ops', 'right/p@ss:w%rd'),
    });
    expect(right.status).toBe(429);
    expect(run.output()).not.toContain('right/p@ss:w%rd');
  });

  it('on loopback: open without credentials, protected as soon as they are set', async () => {
    const open = await board();
    expect((await fetch(`${open.origin}/api/queues`)).status).toBe(200);
    const closed = await board({ BOARD_USER: 'ops', BOARD_PASSWORD: 'secret' });
    expect((await fetch(`${closed.origin}/api/queues`)).status).toBe(401);
    const ok = await fetch(`${closed.origin}/api/queues`, { headers: basic('ops', 'secret') });
    expect(ok.status).toBe(200);
  });

  it('lists every event and dead-letter queue with its description; dead letters are read-only', async () => {
    await client.flushdb();
    await addEvent('alpha', 'e1');
    await addEvent('alpha.dead', 'd1', true);
    const run = await board();
    const queues = await apiQueues(run.origin, {}, { queue: 'alpha.dead', status: 'waiting' });
    expect(queues.map((q) => q.name)).toEqual(['alpha', 'alpha.dead', 'bravo', 'bravo.dead']);
    expect(queues.map((q) => [q.name, q.displayName, q.readOnlyMode, q.allowRetries])).toEqual([
      ['alpha', 'alpha: events', false, false],
      ['alpha.dead', 'alpha: dead letters', true, false],
      ['bravo', 'bravo: events', false, false],
      ['bravo.dead', 'bravo: dead letters', true, false],
    ]);
    expect(queues[0]?.description).toMatch(/Change events routed to worker alpha/);
    expect(queues[1]?.description).toMatch(
      /Dead letters of worker alpha.*changeq dlq retry\|discard --worker alpha/,
    );
    const dead = queues[1]?.jobs[0];
    expect(dead?.name).toBe('insert shop.orders');
    expect(dead?.data).toMatchObject({
      ns: 'shop.orders',
      op: 'insert',
      deadLetter: { kind: 'dead', error: { message: 'planned failure' } },
      event: { operationType: 'insert', fullDocument: { customer: 'Grace', total: 7 } },
    });
    // A dead letter cannot be removed, edited or duplicated from the board.
    for (const [method, path] of [
      ['PUT', '/api/queues/alpha.dead/d1/clean'],
      ['PUT', '/api/queues/alpha.dead/clean/wait'],
      ['PUT', '/api/queues/alpha.dead/empty'],
      ['PATCH', '/api/queues/alpha.dead/d1/update-data'],
      ['POST', '/api/queues/alpha.dead/add'],
    ] as const) {
      const response = await fetch(`${run.origin}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'x', data: {}, jobData: {} }),
      });
      expect(response.status, `${method} ${path}`).toBe(405);
      expect(await response.text()).toMatch(
        path.includes('/d1/')
          ? /changeq dlq retry --worker alpha --job d1, or changeq dlq discard --worker alpha --job d1/
          : /changeq dlq list --worker alpha, then changeq dlq retry \(or discard\)/,
      );
    }
    expect(await client.exists('changeq:alpha.dead:d1')).toBe(1);
  });

  it('event queues: pausing and cleaning finished jobs work; what would drop or reorder events is refused', async () => {
    await client.flushdb();
    // e2 completed (as the worker completes a dead-lettered event), e1 waiting.
    await addEvent('alpha', 'e2');
    const worker = new Worker('alpha', null, {
      connection: { host: '127.0.0.1', port: redis.port },
      prefix: 'changeq',
    });
    const job = await worker.getNextJob('test-token');
    expect(job?.id).toBe('e2');
    await job?.moveToCompleted(
      { deadLetter: { queue: 'alpha.dead', jobId: 'e2' } },
      'test-token',
      false,
    );
    await worker.close();
    await addEvent('alpha', 'e1');
    const run = await board();
    const send = async (method: string, path: string, body: unknown = {}) => {
      const response = await fetch(`${run.origin}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: response.status, text: await response.text() };
    };
    const refused: [string, string, RegExp][] = [
      ['PUT', '/api/queues/alpha/e2/retry', /run it after newer events of its document/],
      ['PUT', '/api/queues/alpha/retry/completed', /run it after newer events/],
      ['PUT', '/api/queues/alpha/e1/clean', /job e1 is waiting: removing it would drop/],
      ['PUT', '/api/queues/alpha/clean/wait', /cleaning wait jobs would drop change events/],
      ['PUT', '/api/queues/alpha/empty', /could drop or reorder change events/],
      ['PUT', '/api/queues/alpha/obliterate', /could drop or reorder change events/],
      ['PATCH', '/api/queues/alpha/e1/update-data', /editing the data of a change event/],
      ['POST', '/api/queues/alpha/add', /only the ingest enqueues change events/],
    ];
    for (const [method, path, reason] of refused) {
      const answer = await send(method, path, { name: 'x', data: {}, jobData: {} });
      expect(answer.status, `${method} ${path}`).toBe(403);
      expect(answer.text).toMatch(reason);
    }
    expect(await client.llen('changeq:alpha:wait')).toBe(1);
    expect((await send('PUT', '/api/queues/alpha/pause')).status).toBe(200);
    expect((await apiQueues(run.origin))[0]).toMatchObject({ name: 'alpha' });
    expect(await client.hexists('changeq:alpha:meta', 'paused')).toBe(1);
    expect((await send('PUT', '/api/queues/alpha/resume')).status).toBe(200);
    expect((await send('PUT', '/api/queues/alpha/e2/clean')).status).toBe(204);
    expect(await client.exists('changeq:alpha:e2')).toBe(0);
    expect(await client.exists('changeq:alpha:e1')).toBe(1);
  });

  it('BOARD_READ_ONLY=true: every queue is read-only, every action answers 405', async () => {
    await client.flushdb();
    await addEvent('alpha', 'e1');
    const run = await board({ BOARD_READ_ONLY: 'true' });
    expect(run.output()).toMatch(/"readOnly":true/);
    const queues = await apiQueues(run.origin);
    expect(queues.every((q) => q.readOnlyMode && !q.allowRetries)).toBe(true);
    for (const [method, path] of [
      ['PUT', '/api/queues/alpha/pause'],
      ['PUT', '/api/queues/alpha/clean/completed'],
      ['PUT', '/api/queues/alpha/e1/clean'],
    ] as const) {
      const response = await fetch(`${run.origin}${path}`, { method });
      expect(response.status, path).toBe(405);
    }
    expect(await client.hexists('changeq:alpha:meta', 'paused')).toBe(0);
    expect(await client.exists('changeq:alpha:e1')).toBe(1);
  });

  it('follows workers.toml: new names appear, removed ones go, a broken edit keeps the last good set', async () => {
    const file = workersFile('workers = ["alpha"]\n');
    const run = await board({ WORKERS_FILE: file });
    const names = async () => (await apiQueues(run.origin)).map((q) => q.name).join(' ');
    expect(await names()).toBe('alpha alpha.dead');

    writeFileSync(file, 'workers = ["alpha", "delta"]\n');
    await waitFor(async () => (await names()) === 'alpha alpha.dead delta delta.dead', 'delta');
    await run.waitForLine(/workers file changed: queues updated/);

    writeFileSync(file, '# a comment\nworkers = ["alpha", "delta",\n  "echo", "echo"]\n');
    const error = await run.waitForLine(/workers file not applied/);
    const entry = JSON.parse(error) as { level: number; msg: string; line: number };
    expect(entry.level).toBe(50);
    expect(entry.line).toBe(3);
    expect(entry.msg).toContain(`${file}:3: duplicate worker name "echo"`);
    expect(entry.msg).toMatch(/keeping the last good set of queues/);
    expect(await names()).toBe('alpha alpha.dead delta delta.dead');

    writeFileSync(file, 'workers = ["echo", "delta"]\n');
    await waitFor(async () => (await names()) === 'echo echo.dead delta delta.dead', 'echo');
    const changes = logLines(run.output()).filter(
      (l) => l.msg === 'workers file changed: queues updated',
    );
    expect(changes.at(-1)).toMatchObject({ added: ['echo'], removed: ['alpha'] });
  });

  it('Redis unreachable: keeps serving, answers 503 REDIS_UNAVAILABLE with the reason, recovers alone', async () => {
    const down = await startRedis();
    await down.kill('SIGTERM'); // unlike stop(), keeps its folder for restart()
    const run = await board({ REDIS_URL: down.url });
    await run.waitForLine(/cannot reach Redis: the board answers 503/);
    expect((await fetch(`${run.origin}/`)).status).toBe(200);
    const started = Date.now();
    const answer = await fetch(`${run.origin}/api/queues`);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(answer.status).toBe(503);
    const body = (await answer.json()) as { error: { key: string }; message: string };
    expect(body.error.key).toBe('ERRORS.REDIS_UNAVAILABLE');
    expect(body.message).toContain(`cannot reach Redis at ${down.url}`);
    expect(body.message).toMatch(/ECONNREFUSED/);

    await down.restart();
    try {
      await waitFor(
        async () => (await fetch(`${run.origin}/api/queues`)).status === 200,
        'Redis back',
      );
      await run.waitForLine(/"msg":"Redis is reachable again"/);
      expect((await apiQueues(run.origin)).length).toBe(4);
      // A one-line warning per outage, not one per reconnect attempt.
      expect(run.output().match(/cannot reach Redis: /g)).toHaveLength(1);
    } finally {
      await down.stop();
    }
  });

  it('serves under BOARD_BASE_PATH and redirects / there', async () => {
    const run = await board({ BOARD_BASE_PATH: '/ops/queues/' });
    expect(run.output()).toMatch(
      /Bull Board listening on http:\/\/127\.0\.0\.1:\d+\/ops\/queues\//,
    );
    const page = await fetch(`${run.origin}/ops/queues/`);
    expect(await page.text()).toContain('<base href="/ops/queues/"');
    expect((await apiQueues(`${run.origin}/ops/queues`)).length).toBe(4);
    const root = await fetch(`${run.origin}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/ops/queues/');
  });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    '%s closes the server and Redis and exits 0',
    async (signal) => {
      const run = await board();
      await apiQueues(run.origin);
      const clientsBefore = await client.client('LIST');
      expect(clientsBefore).toMatch(/name=changeq-board/);
      process.kill(run.pid, signal);
      const { code } = await run.exited;
      expect(code).toBe(0);
      expect(run.output()).toMatch(/"msg":"stopped"/);
      await expect(fetch(`${run.origin}/`)).rejects.toThrow();
      await waitFor(
        async () => !/name=changeq-board/.test((await client.client('LIST')) as string),
        'the board closed its Redis connection',
        5000,
      );
    },
  );
});
