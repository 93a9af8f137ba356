import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { afterAll, expect, test } from 'vitest';
import { isAlive, terminate } from '@changeq/processes';

const run = promisify(execFile);
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js');
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'changeq-stack-cli-'));
const npmDir = mkdtempSync(join(tmpdir(), 'changeq-stack-npm-'));
const tlsDir = mkdtempSync(join(tmpdir(), 'changeq-stack-tls-'));
const clusterDir = mkdtempSync(join(tmpdir(), 'changeq-stack-cluster-'));

afterAll(async () => {
  // Whatever happened, stop what `up` started (by the PIDs it recorded).
  for (const folder of [dir, npmDir, tlsDir, clusterDir]) {
    try {
      const state = JSON.parse(readFileSync(join(folder, 'stack.json'), 'utf8')) as {
        redis: { pid: number; nodes?: { pid: number }[] };
        mongo: { pid: number };
      };
      await Promise.all([
        ...(state.redis.nodes ?? [state.redis]).map((node) => terminate(node.pid, 'SIGKILL', 1000)),
        terminate(state.mongo.pid, 'SIGKILL', 1000),
      ]);
    } catch {
      // already down
    }
  }
});

test('up starts Redis and MongoDB and prints their settings; down stops exactly those', async () => {
  const { stdout } = await run(process.execPath, [CLI, 'up', '--json', '--dir', dir]);
  const settings = JSON.parse(stdout) as { mongodbUri: string; redisUrl: string };
  expect(settings.mongodbUri).toMatch(/^mongodb:\/\/127\.0\.0\.1:\d+\/\?replicaSet=rs0$/);
  expect(settings.redisUrl).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
  const state = JSON.parse(readFileSync(join(dir, 'stack.json'), 'utf8')) as {
    redis: { pid: number };
    mongo: { pid: number };
  };

  const redis = new Redis(settings.redisUrl);
  expect(await redis.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
  redis.disconnect();
  const mongo = new MongoClient(settings.mongodbUri);
  await mongo.db('t').collection('c').insertOne({ ok: true });
  await mongo.close();

  // A second `up` reports the running servers instead of starting new ones; shell exports too.
  const again = await run(process.execPath, [CLI, 'up', '--dir', dir]);
  expect(again.stdout).toBe(
    `export MONGODB_URI='${settings.mongodbUri}'\nexport REDIS_URL='${settings.redisUrl}'\n`,
  );

  await run(process.execPath, [CLI, 'down', '--dir', dir]);
  expect(isAlive(state.redis.pid)).toBe(false);
  expect(isAlive(state.mongo.pid)).toBe(false);
}, 60_000);

test('up --redis-tls: Redis over TLS only, with the files that make changeq trust it', async () => {
  const { stdout } = await run(process.execPath, [CLI, 'up', '--redis-tls', '--dir', tlsDir]);
  const exports = Object.fromEntries(
    [...stdout.matchAll(/^export (\w+)='([^']*)'$/gm)].map((m) => [m[1]!, m[2]!]),
  );
  expect(Object.keys(exports).sort()).toEqual([
    'MONGODB_URI',
    'REDIS_TLS_CA',
    'REDIS_TLS_CERT',
    'REDIS_TLS_KEY',
    'REDIS_URL',
  ]);
  expect(exports.REDIS_URL).toMatch(/^rediss:\/\/127\.0\.0\.1:\d+$/);
  const redis = new Redis(exports.REDIS_URL!, {
    tls: {
      ca: readFileSync(exports.REDIS_TLS_CA!),
      cert: readFileSync(exports.REDIS_TLS_CERT!),
      key: readFileSync(exports.REDIS_TLS_KEY!),
    },
  });
  expect(await redis.ping()).toBe('PONG');
  redis.disconnect();
  // `status` finds it running (its process title names the TLS port).
  expect((await run(process.execPath, [CLI, 'up', '--redis-tls', '--dir', tlsDir])).stdout).toBe(
    stdout,
  );
  await run(process.execPath, [CLI, 'down', '--dir', tlsDir]);
}, 60_000);

test('up --cluster: a Redis Cluster of three masters behind a redis+cluster:// URL; down stops every node', async () => {
  const { stdout } = await run(process.execPath, [
    CLI,
    'up',
    '--cluster',
    '--json',
    '--dir',
    clusterDir,
  ]);
  const settings = JSON.parse(stdout) as { redisUrl: string };
  const nodes = /^redis\+cluster:\/\/(.*)$/.exec(settings.redisUrl)?.[1]?.split(',') ?? [];
  expect(nodes).toHaveLength(3);
  const state = JSON.parse(readFileSync(join(clusterDir, 'stack.json'), 'utf8')) as {
    redis: { nodes: { pid: number; port: number }[] };
    mongo: { pid: number };
  };
  expect(state.redis.nodes.map((node) => `127.0.0.1:${node.port}`)).toEqual(nodes);

  const cluster = new Cluster(
    nodes.map((node) => ({ host: '127.0.0.1', port: Number(node.split(':')[1]) })),
  );
  try {
    expect(await cluster.cluster('INFO')).toMatch(/cluster_state:ok[\s\S]*cluster_size:3/);
    // Keys of three tags, written through the cluster, land on more than one master.
    for (const tag of ['north', 'south', 'east']) await cluster.set(`{${tag}}:k`, tag);
    const counts = await Promise.all(cluster.nodes('master').map((node) => node.dbsize()));
    expect(counts.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  } finally {
    cluster.disconnect();
  }
  // A second `up --cluster` reports the running cluster.
  expect(
    (await run(process.execPath, [CLI, 'up', '--cluster', '--json', '--dir', clusterDir])).stdout,
  ).toBe(stdout);

  await run(process.execPath, [CLI, 'down', '--dir', clusterDir]);
  // Whatever `down` left running is ended here (its state file is gone), then reported.
  const left = [...state.redis.nodes, state.mongo].filter((p) => isAlive(p.pid));
  await Promise.all(left.map((p) => terminate(p.pid, 'SIGKILL', 1000)));
  expect(left).toEqual([]);
}, 60_000);

test('a wrong command or flag is one line with the fix and exit code 2', async () => {
  for (const args of [['bogus'], ['up', '--nope'], []]) {
    const failure = await run(process.execPath, [CLI, ...args, '--dir', dir]).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect((failure as { code: number }).code).toBe(2);
    const stderr = (failure as { stderr: string }).stderr.trim();
    expect(stderr.split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^stack: .* Fix: /);
  }
});

test('`npm run stack -- up --json` prints the JSON line alone on stdout (npm and turbo stay off it)', async () => {
  // As a user types it, from the repository root, without the npm_* variables of the `npm test`
  // that runs this file.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')),
  );
  const npm = (...args: string[]) =>
    run('npm', ['run', 'stack', '--', ...args, '--dir', npmDir], { cwd: REPO_ROOT, env });
  const { stdout } = await npm('up', '--json');
  const lines = stdout.split('\n');
  expect(lines, stdout).toHaveLength(2);
  expect(lines[1]).toBe('');
  const settings = JSON.parse(lines[0]!) as { mongodbUri: string; redisUrl: string };
  expect(Object.keys(settings).sort()).toEqual(['mongodbUri', 'redisUrl']);
  const state = JSON.parse(readFileSync(join(npmDir, 'stack.json'), 'utf8')) as {
    redis: { pid: number };
    mongo: { pid: number };
  };
  expect(isAlive(state.redis.pid) && isAlive(state.mongo.pid)).toBe(true);

  const down = await npm('down');
  expect(down.stdout).toBe('');
  expect(isAlive(state.redis.pid)).toBe(false);
  expect(isAlive(state.mongo.pid)).toBe(false);
}, 120_000);
