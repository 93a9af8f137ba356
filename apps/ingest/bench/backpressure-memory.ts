/**
 * The ingest's memory while backpressure holds it: a million real BullMQ jobs wait in the
 * queues, more changes keep arriving in MongoDB, and the ingest must wait (the oplog holds the
 * backlog) with a flat RSS. Prints the RSS samples and the verdict against the 200 MB bound.
 * Usage: npm run bench:memory (in apps/ingest) [-- --jobs 1000000]
 */
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { rssMb, spawnTracked, terminate } from '@changeq/processes';
import { startStack } from '@changeq/stack';
import { appMain, workersFile } from '@changeq/testkit';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '1000000' } } });
const JOBS = Number(values.jobs);
const WORKERS = ['alpha', 'bravo', 'charlie'];
const MAIN = appMain('ingest');
const LIMIT_MB = 200;

const roundedRssMb = (pid: number): number => Math.round(rssMb(pid));

async function main() {
  const stack = await startStack();
  const redis = new Redis(stack.redisUrl, { maxRetriesPerRequest: null });
  const client = new MongoClient(stack.mongodbUri);
  try {
    await client.connect();
    console.log(`adding ${JOBS.toLocaleString('en-US')} waiting jobs to the queues…`);
    const queues = WORKERS.map((name) => new Queue(name, { connection: redis, prefix: 'changeq' }));
    const started = performance.now();
    for (let i = 0; i < JOBS; i += 3000) {
      await Promise.all(
        queues.map((queue, q) =>
          queue.addBulk(
            Array.from({ length: 1000 }, (_, j) => ({
              name: 'filler',
              data: { n: i + q * 1000 + j },
            })),
          ),
        ),
      );
    }
    console.log(`  done in ${Math.round(performance.now() - started)} ms`);
    await Promise.all(queues.map((queue) => queue.close()));

    const workers = workersFile(`workers = ${JSON.stringify(WORKERS)}\n`);
    const child = spawnTracked(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        MONGODB_URI: stack.mongodbUri,
        REDIS_URL: stack.redisUrl,
        WORKERS_FILE: workers,
        WATCH: 'mem',
        BACKLOG_LIMIT: '100000',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    // Changes keep coming while the ingest must wait.
    const samples: number[] = [];
    for (let round = 0; round < 20; round += 1) {
      await client
        .db('mem')
        .collection('c')
        .insertMany(Array.from({ length: 2500 }, (_, i) => ({ round, i, pad: 'x'.repeat(200) })));
      samples.push(roundedRssMb(child.pid!));
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const waiting = await Promise.all(WORKERS.map((name) => redis.llen(`changeq:${name}:wait`)));
    await terminate(child.pid!, 'SIGTERM');
    const max = Math.max(...samples);
    console.log(
      `\ningest RSS while held by backpressure (MB, every 0.5 s, 50,000 new changes): ${samples.join(' ')}`,
    );
    console.log(
      `waiting jobs per queue at the end: ${waiting.map((n) => n.toLocaleString('en-US')).join(', ')} (the new changes stay in the oplog)`,
    );
    console.log(
      `max RSS ${max} MB — bound ${LIMIT_MB} MB: ${max < LIMIT_MB ? 'within' : 'EXCEEDED'}`,
    );
    if (max >= LIMIT_MB) process.exitCode = 1;
  } finally {
    redis.disconnect();
    await client.close();
    await stack.stop();
  }
}

await main();
