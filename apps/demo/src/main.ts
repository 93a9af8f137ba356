#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { UserError, loadWorkersConfig, redactUri, runMain } from '@changeq/shared';
import { freePorts, spawnTracked, terminate, waitForExit } from '@changeq/processes';
import { startStack } from '@changeq/stack';
import { DEFAULT_PREFIX, deadLetterQueueName, eventQueueName } from '@changeq/store';
import { runWriter } from './writer.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const USAGE = `Usage: npm run demo [-- --rate <ops/s>] [-- --duration <seconds>]

Starts Redis and the project's MongoDB-compatible server on ports of their own, a writer making
a steady stream of inserts, updates and deletes in the "shop" database, the ingest, one worker
per name in workers.toml, and Bull Board. Ctrl-C stops everything it started.`;

interface Component {
  name: string;
  child: ChildProcess;
}

function prefixOutput(name: string, child: ChildProcess): void {
  const label = `[${name}]`.padEnd(10);
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream?.on('data', (chunk: Buffer) => {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) process.stdout.write(`${label} ${line}\n`);
    });
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** What happened to the jobs, per worker queue, read from BullMQ itself. */
async function printSummary(redisUrl: string, names: readonly string[]): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined); // a failure rejects the calls below, reported by the caller
  try {
    for (const name of names) {
      for (const queueName of [eventQueueName(name), deadLetterQueueName(name)]) {
        const queue = new Queue(queueName, { connection: redis, prefix: DEFAULT_PREFIX });
        const counts = await queue.getJobCounts(
          'waiting',
          'active',
          'completed',
          'failed',
          'delayed',
        );
        await queue.close();
        console.log(
          `demo: queue ${queueName.padEnd(16)} ${Object.entries(counts)
            .map(([state, count]) => `${state} ${count}`)
            .join(', ')}`,
        );
      }
    }
  } finally {
    redis.disconnect();
  }
}

runMain('demo', async () => {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        rate: { type: 'string', default: '20' },
        duration: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    throw new UserError((error as Error).message, 'run `npm run demo -- --help` for the options');
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const rate = Number(values.rate);
  if (!Number.isFinite(rate) || rate <= 0 || rate > 10_000) {
    throw new UserError(
      `--rate "${values.rate}" is not a number of operations per second`,
      'use e.g. --rate 20',
    );
  }
  const duration = values.duration === undefined ? null : Number(values.duration);
  if (duration !== null && (!Number.isFinite(duration) || duration <= 0)) {
    throw new UserError(
      `--duration "${values.duration}" is not a number of seconds`,
      'use e.g. --duration 60',
    );
  }
  const workersFile = resolve(process.env.WORKERS_FILE ?? join(ROOT, 'workers.toml'));
  const workers = loadWorkersConfig(workersFile);

  console.log('demo: starting Redis and MongoDB on loopback ports of their own…');
  // The servers outlive a Ctrl-C to the terminal's process group; stop() stops them last.
  const stack = await startStack({
    redis: { ownProcessGroup: true },
    mongo: { ownProcessGroup: true },
  });
  const components: Component[] = [];
  const abort = new AbortController();
  const baseEnv = {
    ...process.env,
    MONGODB_URI: stack.mongodbUri,
    REDIS_URL: stack.redisUrl,
    WORKERS_FILE: workersFile,
    LOG_FORMAT: process.env.LOG_FORMAT ?? 'pretty',
  };
  const start = (name: string, script: string, args: string[], env: Record<string, string>) => {
    const path = join(ROOT, script);
    if (!existsSync(path)) {
      console.log(`demo: ${name} is not built (${script} missing); skipping it`);
      return;
    }
    const child = spawnTracked(process.execPath, [path, ...args], {
      env: { ...baseEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    prefixOutput(name, child);
    components.push({ name, child });
    console.log(`demo: started ${name} (pid ${child.pid})`);
  };

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      console.log('\ndemo: stopping everything it started…');
      abort.abort();
      // Ctrl-C in a terminal signals the whole process group: the components are already
      // stopping, and a second signal would make them exit at once. Give them a moment to stop
      // on their own, then send SIGTERM to what is left (stopped with `kill <demo pid>`, say).
      const exited = Promise.all(components.map(({ child }) => waitForExit(child)));
      await Promise.race([exited, sleep(3000)]);
      await Promise.all(
        components.map(({ child }) =>
          child.pid && child.exitCode === null && child.signalCode === null
            ? terminate(child.pid, 'SIGTERM', 8000)
            : undefined,
        ),
      );
      await exited;
      await printSummary(stack.redisUrl, workers.names).catch((error: Error) =>
        console.log(`demo: could not read the queues (${error.message})`),
      );
      await stack.stop();
      console.log('demo: stopped');
    })();
    return stopping;
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());

  try {
    // Chosen together, so that no two components get the same one (a port chosen alone can be
    // chosen again before the process it was meant for binds it).
    const [ingestPort, spareBoardPort, ...ports] = await freePorts(2 + workers.names.length);
    // Bull Board on 3000 when it is free (a stable address to bookmark), else on a free port.
    const wanted = Number(process.env.BOARD_PORT ?? 3000);
    const boardPort = wanted > 0 && (await portIsFree(wanted)) ? wanted : spareBoardPort!;
    start('ingest', 'apps/ingest/dist/main.js', [], {
      WATCH: 'shop',
      HTTP_PORT: String(ingestPort),
    });
    const workerPorts: Record<string, number> = {};
    for (const [i, name] of workers.names.entries()) {
      workerPorts[name] = ports[i]!;
      start(name, 'apps/worker/dist/main.js', ['--name', name], {
        HTTP_PORT: String(workerPorts[name]),
      });
    }
    start('board', 'apps/board/dist/main.js', [], { BOARD_PORT: String(boardPort) });

    // A MONGODB_URI of your own may hold a password: the lines below show it as ***, and the
    // CLI line then reads it from your environment.
    const shownMongo = redactUri(stack.mongodbUri);
    const cliMongo = shownMongo === stack.mongodbUri ? `'${shownMongo}'` : '"$MONGODB_URI"';
    console.log(`
demo: running. Where to look:
  Bull Board          http://127.0.0.1:${boardPort}/
  ingest metrics      http://127.0.0.1:${ingestPort}/metrics   (health: /healthz, /readyz)
${workers.names.map((name) => `  worker ${name.padEnd(12)} http://127.0.0.1:${workerPorts[name]}/metrics`).join('\n')}
  operator CLI        MONGODB_URI=${cliMongo} REDIS_URL='${stack.redisUrl}' npm run cli -- status
  MongoDB             ${shownMongo}   (the writer changes shop.orders, shop.customers, shop.inventory)
  Redis               ${stack.redisUrl}
Press Ctrl-C to stop everything.
`);
    if (duration !== null) setTimeout(() => void stop(), duration * 1000).unref();
    const { operations } = await runWriter({
      mongodbUri: stack.mongodbUri,
      rate,
      signal: abort.signal,
      log: (line) => console.log(`[writer]   ${line}`),
    });
    console.log(`demo: the writer made ${operations} changes`);
  } finally {
    await stop();
  }
});
