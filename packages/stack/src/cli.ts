#!/usr/bin/env node
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runMain, UserError } from '@changeq/shared';
import { isAlive, terminate } from '@changeq/processes';
import { startMongo } from './mongo-server.js';
import { startRedis } from './redis-server.js';
import { startRedisCluster } from './redis-cluster.js';

const USAGE = `Usage: npm run stack -- <command> [options]

Starts and stops a local Redis and MongoDB-compatible server on loopback ports of their own.

Commands:
  up        start both (or report the running ones) and print their connection settings
  down      stop exactly the servers that 'up' started
  status    print the connection settings of the running stack

Options:
  --json         print {"mongodbUri": ..., "redisUrl": ...} instead of shell export lines
  --cluster      start a Redis Cluster of three masters instead of one Redis (redis-server
                 --cluster-enabled yes, joined by redis-cli --cluster create); prints its
                 redisUrl as redis+cluster://127.0.0.1:<port>,127.0.0.1:<port>,127.0.0.1:<port>
  --redis-tls    Redis serves TLS only (rediss://), with a CA and certificates made for it in
                 the data folder; prints REDIS_TLS_CA, REDIS_TLS_CERT and REDIS_TLS_KEY too
  --dir <path>   folder for the servers' data and the state file (default: ./.changeq/stack)
  --help         show this help`;

interface StackState {
  redis: {
    /** The single Redis; with --cluster, the cluster's first node. */
    pid: number;
    port: number;
    dataDir: string;
    url: string;
    /** REDIS_TLS_* of a TLS-only Redis. */
    tls?: Record<string, string>;
    /** Every node of a Redis Cluster (--cluster). */
    nodes?: { pid: number; port: number }[];
  };
  mongo: { pid: number; port: number; dataDir: string; uri: string };
}

function readState(file: string): StackState | null {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as StackState;
  } catch {
    throw new UserError(
      `the stack state file ${file} is unreadable`,
      `stop the servers by hand and delete ${file}`,
    );
  }
}

/** The PID still runs the program we started (and was not reused by something else). */
function runsOurs(pid: number, marker: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return true; // no /proc: trust the PID
  }
}

function print(state: StackState, json: boolean): void {
  const tls = state.redis.tls ?? {};
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ mongodbUri: state.mongo.uri, redisUrl: state.redis.url, ...(state.redis.tls ? { redisTls: tls } : {}) })}\n`,
    );
  } else {
    const extra = Object.entries(tls).map(([name, value]) => `export ${name}='${value}'\n`);
    process.stdout.write(
      `export MONGODB_URI='${state.mongo.uri}'\nexport REDIS_URL='${state.redis.url}'\n${extra.join('')}`,
    );
  }
}

/** The Redis processes of a stack: one, or every node of its cluster. */
function redisProcesses(state: StackState): { pid: number; port: number }[] {
  return state.redis.nodes ?? [{ pid: state.redis.pid, port: state.redis.port }];
}

async function startRedisOfStack(dir: string, tls: boolean, cluster: boolean) {
  if (cluster) {
    const started = await startRedisCluster({
      dataDir: join(dir, 'redis-cluster'),
      detached: true,
    });
    const first = started.nodes[0]!;
    return {
      state: {
        pid: first.pid,
        port: first.port,
        dataDir: join(dir, 'redis-cluster'),
        url: started.url,
        nodes: started.nodes.map((node) => ({ pid: node.pid, port: node.port })),
      },
      stop: () => Promise.all(started.nodes.map((node) => terminate(node.pid))),
    };
  }
  const redis = await startRedis({
    dataDir: join(dir, 'redis'),
    detached: true,
    ...(tls ? { tls: { clientCertificates: true } } : {}),
  });
  return {
    state: {
      pid: redis.pid,
      port: redis.port,
      dataDir: redis.dataDir,
      url: redis.url,
      ...(redis.tls ? { tls: redis.tls.env } : {}),
    },
    stop: () => terminate(redis.pid),
  };
}

async function up(dir: string, json: boolean, tls: boolean, cluster: boolean): Promise<void> {
  if (tls && cluster) {
    throw new UserError(
      '--redis-tls and --cluster cannot be combined',
      'choose one: a TLS-only single Redis, or a plain Redis Cluster',
    );
  }
  const stateFile = join(dir, 'stack.json');
  const existing = readState(stateFile);
  if (existing) {
    const redisUp = redisProcesses(existing).every((p) => runsOurs(p.pid, String(p.port)));
    const mongoUp = runsOurs(existing.mongo.pid, String(existing.mongo.port));
    if (redisUp && mongoUp && (existing.redis.nodes !== undefined) === cluster) {
      print(existing, json);
      return;
    }
    await down(dir, true);
  }
  mkdirSync(dir, { recursive: true });
  const redis = await startRedisOfStack(dir, tls, cluster);
  let mongo;
  try {
    mongo = await startMongo({ dataDir: join(dir, 'mongo'), detached: true });
  } catch (error) {
    await redis.stop();
    throw error;
  }
  const state: StackState = {
    redis: redis.state,
    mongo: { pid: mongo.pid, port: mongo.port, dataDir: mongo.dataDir, uri: mongo.uri },
  };
  writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`);
  print(state, json);
}

async function down(dir: string, quiet = false): Promise<void> {
  const stateFile = join(dir, 'stack.json');
  const state = readState(stateFile);
  if (!state) {
    if (!quiet) process.stderr.write(`stack: nothing to stop (no ${stateFile})\n`);
    return;
  }
  const stops: Promise<void>[] = [];
  for (const { pid, port } of redisProcesses(state)) {
    if (runsOurs(pid, String(port))) stops.push(terminate(pid));
  }
  if (runsOurs(state.mongo.pid, String(state.mongo.port))) stops.push(terminate(state.mongo.pid));
  await Promise.all(stops);
  rmSync(stateFile, { force: true });
  if (!quiet)
    process.stderr.write(
      `stack: stopped redis (pid ${redisProcesses(state)
        .map((p) => p.pid)
        .join(', ')}) and mongo (pid ${state.mongo.pid})\n`,
    );
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        'redis-tls': { type: 'boolean', default: false },
        cluster: { type: 'boolean', default: false },
        dir: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    throw new UserError((error as Error).message, 'run `npm run stack -- --help` for the options');
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const dir = resolve(
    values.dir ?? join(process.env.INIT_CWD ?? process.cwd(), '.changeq', 'stack'),
  );
  const command = positionals[0];
  if (positionals.length > 1) {
    throw new UserError(
      `unexpected argument "${positionals[1]}"`,
      'run `npm run stack -- --help` for the usage',
    );
  }
  switch (command) {
    case 'up':
      return up(dir, values.json, values['redis-tls'], values.cluster);
    case 'down':
      return down(dir);
    case 'status': {
      const state = readState(join(dir, 'stack.json'));
      if (!state)
        throw new UserError('the stack is not running', 'start it with `npm run stack -- up`');
      return print(state, values.json);
    }
    case undefined:
      throw new UserError('no command given', 'run `npm run stack -- up`, `down` or `status`');
    default:
      throw new UserError(`unknown command "${command}"`, 'use one of: up, down, status');
  }
}

runMain('stack', main);
