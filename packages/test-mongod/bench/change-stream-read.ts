// Change stream read benchmark: fill the history with small inserts, then time a bare driver
// consumer (collection.watch() with `for await`, default batch sizes) reading them all.
// The server runs as its own process through the CLI, as the project's stack runs it; pass
// --in-process to run it inside the benchmark process instead.
//   npm run bench [-- --events 100000] [-- --in-process]
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import type { Timestamp } from 'mongodb';
import { startMongoServer } from '../src/index.js';

const TARGET_EVENTS_PER_SECOND = 30_000;

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    'in-process': { type: 'boolean', default: false },
  },
});
const total = Number(values.events);

async function startServer(): Promise<{ uri: string; stop: () => Promise<void> }> {
  if (values['in-process']) {
    const s = await startMongoServer();
    return { uri: s.uri, stop: () => s.stop() };
  }
  const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/cli.js');
  const child = spawn(process.execPath, [cli], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  const { uri, pid } = JSON.parse(line) as { uri: string; pid: number };
  return {
    uri,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        process.kill(pid, 'SIGTERM');
      }),
  };
}

async function main(): Promise<void> {
  const server = await startServer();
  const client = new MongoClient(server.uri);
  try {
    await client.connect();
    const coll = client.db('bench').collection('events');
    await client.db('bench').createCollection('events');
    const start = (await client.db('admin').command({ hello: 1 })).operationTime as Timestamp;
    let t0 = performance.now();
    const chunk = 10_000;
    for (let i = 0; i < total; i += chunk) {
      const n = Math.min(chunk, total - i);
      await coll.insertMany(
        Array.from({ length: n }, (_, j) => ({ seq: i + j, key: `k${(i + j) % 64}`, v: 1 })),
      );
    }
    const fillMs = performance.now() - t0;
    console.log(`filled history with ${total} inserts in ${fillMs.toFixed(0)} ms`);

    t0 = performance.now();
    const stream = coll.watch([], { startAtOperationTime: start });
    let read = 0;
    for await (const ev of stream) {
      if (ev.operationType === 'insert') read++;
      if (read === total) break;
    }
    const readMs = performance.now() - t0;
    await stream.close();
    const rate = Math.round((read / readMs) * 1000);
    console.log(
      `read ${read} change events in ${readMs.toFixed(0)} ms: ${rate} events/s ` +
        `(server ${values['in-process'] ? 'in-process' : 'as a separate process'})`,
    );
    if (rate < TARGET_EVENTS_PER_SECOND) {
      console.error(`below the target of ${TARGET_EVENTS_PER_SECOND} events/s`);
      process.exitCode = 1;
    }
  } finally {
    await client.close();
    await server.stop();
  }
}

await main();
