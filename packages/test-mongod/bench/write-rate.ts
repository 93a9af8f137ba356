// Single-document write rate: one driver client keeps 64 operations in flight and times insertOne,
// updateOne({_id}) and deleteOne({_id}) against a collection holding 10k, 100k and 1M documents.
// The rate must not depend on the collection size (or on the length of the change history).
// The server runs as its own process with a data folder, as the project's stack runs it;
// --in-process runs it inside this process, --memory without a data folder.
//   npm run bench:write [-- --quick] [-- --json] [-- --sizes 10000,100000] [-- --ops 20000]
// --quick times fewer operations per size; --json prints one JSON document on stdout instead of
// the table; --server-cpu-prof <dir> writes the server's CPU profile (node --cpu-prof) there;
// --cli <path> benchmarks another build of the server (e.g. an older commit's dist/cli.js).
// Beside each rate it reports the CPU per write of the server and of this client: the one that
// spends more is the limit. It exits non-zero when a rate misses 10,000 writes/s and the server
// is that limit (unless --no-goal); a client-bound miss is reported, not failed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import type { Collection, ObjectId } from 'mongodb';
import { processCpuMicros, rssMb } from '@changeq/processes';
import { startMongoServer } from '../src/index.js';

const GOAL_WRITES_PER_SECOND = 10_000;
const IN_FLIGHT = 64;

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000,100000,1000000' },
    ops: { type: 'string' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'in-process': { type: 'boolean', default: false },
    memory: { type: 'boolean', default: false },
    'max-seconds': { type: 'string', default: '60' },
    'no-goal': { type: 'boolean', default: false },
    'server-cpu-prof': { type: 'string' },
    cli: { type: 'string' },
  },
});

function positiveInts(flag: string, raw: string): number[] {
  const list = raw.split(',').map((s) => Number(s.trim()));
  if (list.some((n) => !Number.isInteger(n) || n <= 0)) {
    console.error(`--${flag} expects positive integers separated by commas, got '${raw}'`);
    process.exit(2);
  }
  return list;
}

const sizes = positiveInts('sizes', values.sizes);
const ops = positiveInts('ops', values.ops ?? (values.quick ? '3000' : '20000'))[0] as number;
/** A phase stops after this long even if not all its operations ran (slow servers). */
const maxPhaseMs = (positiveInts('max-seconds', values['max-seconds'])[0] as number) * 1000;
const say = (line: string): void => {
  if (!values.json) console.log(line);
};

interface Server {
  uri: string;
  rssBytes(): number;
  /** CPU time the server process used so far, in µs (undefined in-process). */
  cpuMicros(): number | undefined;
  stop(): Promise<void>;
}

async function startServer(): Promise<Server> {
  const dataDir = values.memory ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'cq-wbench-'));
  const cleanup = (): void => {
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  };
  if (values['in-process']) {
    const s = await startMongoServer({ dataDir });
    return {
      uri: s.uri,
      rssBytes: () => process.memoryUsage().rss,
      cpuMicros: () => undefined,
      stop: async () => {
        await s.stop();
        cleanup();
      },
    };
  }
  const cli =
    values.cli ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/cli.js');
  const args = [cli, ...(dataDir ? ['--dbpath', dataDir] : [])];
  const prof = values['server-cpu-prof'];
  const nodeArgs = prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : [];
  const child = spawn(process.execPath, [...nodeArgs, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
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
    rssBytes: () => rssMb(pid) * 2 ** 20,
    cpuMicros: () => processCpuMicros(pid),
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => {
          cleanup();
          resolve();
        });
        process.kill(pid, 'SIGTERM');
      }),
  };
}

interface Doc {
  _id?: ObjectId;
  seq: number;
  key: string;
  n: number;
  payload: string;
}

const PAYLOAD = 'x'.repeat(100);
const newDoc = (seq: number): Doc => ({ seq, key: `k${seq % 64}`, n: 0, payload: PAYLOAD });

interface Phase {
  /** Operations per second. */
  rate: number;
  done: number;
  /** CPU µs per operation used by the server and by this (client) process. */
  serverCpuUs: number | undefined;
  clientCpuUs: number;
}

/**
 * Run `count` operations with IN_FLIGHT of them outstanding. CPU per operation is reported
 * beside the rate because it does not depend on what else the machine is running.
 */
async function timed(
  server: Server,
  count: number,
  op: (i: number) => Promise<unknown>,
): Promise<Phase> {
  let next = 0;
  let done = 0;
  const serverCpu0 = server.cpuMicros();
  const clientCpu0 = process.cpuUsage();
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (next < count && performance.now() - t0 < maxPhaseMs) {
      const i = next++;
      await op(i);
      done++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  const rate = (done / (performance.now() - t0)) * 1000;
  const serverCpu1 = server.cpuMicros();
  const client = process.cpuUsage(clientCpu0);
  const perOp = (us: number): number => Math.round(us / Math.max(done, 1));
  return {
    rate,
    done,
    serverCpuUs:
      serverCpu0 === undefined || serverCpu1 === undefined
        ? undefined
        : perOp(serverCpu1 - serverCpu0),
    clientCpuUs: perOp(client.user + client.system),
  };
}

async function fill(coll: Collection<Doc>, ids: ObjectId[], upTo: number): Promise<void> {
  const chunk = 10_000;
  while (ids.length < upTo) {
    const n = Math.min(chunk, upTo - ids.length);
    const docs = Array.from({ length: n }, (_, j) => newDoc(ids.length + j));
    const r = await coll.insertMany(docs);
    for (let j = 0; j < n; j++) ids.push(r.insertedIds[j] as ObjectId);
  }
}

interface KindResult {
  perSecond: number;
  serverCpuUsPerWrite: number | undefined;
  clientCpuUsPerWrite: number;
  /**
   * The process that spent more CPU per operation: with each process on a core of its own,
   * that one sets the rate.
   */
  limitedBy: 'server' | 'client' | undefined;
}

interface SizeResult {
  docs: number;
  insert: KindResult;
  update: KindResult;
  delete: KindResult;
  serverRssMB: number;
  fillSeconds: number;
  /** Waited after the fill for the server's compaction of it to finish. */
  settleSeconds: number;
}

const kind = (p: Phase): KindResult => ({
  perSecond: Math.round(p.rate),
  serverCpuUsPerWrite: p.serverCpuUs,
  clientCpuUsPerWrite: p.clientCpuUs,
  limitedBy:
    p.serverCpuUs === undefined ? undefined : p.serverCpuUs > p.clientCpuUs ? 'server' : 'client',
});

async function main(): Promise<void> {
  const server = await startServer();
  const client = new MongoClient(server.uri, { maxPoolSize: IN_FLIGHT });
  const results: SizeResult[] = [];
  let ceiling: KindResult | undefined;
  try {
    await client.connect();
    const coll = client.db('bench').collection<Doc>('writes');
    const ids: ObjectId[] = [];
    say(
      `${ops} operations of each kind per size, ${IN_FLIGHT} in flight, one client ` +
        `(load average ${os.loadavg()[0]?.toFixed(1)} on ${os.cpus().length} CPUs)`,
    );
    // The same client and sockets doing nothing but round trips: no write rate can exceed this.
    const admin = client.db('admin');
    await timed(server, ops, () => admin.command({ ping: 1 })); // warm-up (JIT, connections)
    const ping = await timed(server, ops, () => admin.command({ ping: 1 }));
    ceiling = kind(ping);
    say(
      `ceiling: ${ceiling.perSecond} ping round trips/s (client CPU ${ceiling.clientCpuUsPerWrite} µs, ` +
        `server CPU ${ceiling.serverCpuUsPerWrite ?? '-'} µs each)`,
    );
    say('docs        inserts/s  updates/s  deletes/s  server CPU µs/write (i/u/d)  server RSS');
    for (const size of [...sizes].sort((a, b) => a - b)) {
      const t0 = performance.now();
      await fill(coll, ids, size);
      const fillMs = performance.now() - t0;
      // A fill of 1M documents ends with the log compacting them (in the background, a slice per
      // event-loop turn): let it finish, so the timed writes measure writes, and say how long.
      const t1 = performance.now();
      while ((await client.db('admin').command({ serverStatus: 1 })).changeq?.compacting === true) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const settleMs = performance.now() - t1;
      const base = ids.length;
      const added: ObjectId[] = [];
      const inserts = await timed(server, ops, async (i) => {
        const r = await coll.insertOne(newDoc(base + i));
        added.push(r.insertedId);
      });
      const updates = await timed(server, ops, (i) =>
        coll.updateOne(
          { _id: ids[Math.floor((i * 7919) % ids.length)] as ObjectId },
          { $inc: { n: 1 }, $set: { at: new Date() } },
        ),
      );
      // Delete what this round inserted, so the next size starts from its own count.
      const deletes = await timed(server, added.length, (i) =>
        coll.deleteOne({ _id: added[i] as ObjectId }),
      );
      // Only when a phase hit --max-seconds.
      for (const id of added.slice(deletes.done)) await coll.deleteOne({ _id: id });
      const r: SizeResult = {
        docs: size,
        insert: kind(inserts),
        update: kind(updates),
        delete: kind(deletes),
        serverRssMB: Math.round(server.rssBytes() / 2 ** 20),
        fillSeconds: Math.round(fillMs / 100) / 10,
        settleSeconds: Math.round(settleMs / 100) / 10,
      };
      results.push(r);
      const cpu = [r.insert, r.update, r.delete]
        .map((k) => String(k.serverCpuUsPerWrite ?? '-'))
        .join(' / ');
      say(
        `${String(size).padEnd(10)} ${String(r.insert.perSecond).padStart(9)}  ` +
          `${String(r.update.perSecond).padStart(9)}  ${String(r.delete.perSecond).padStart(9)}` +
          `  ${cpu.padStart(26)}  ${r.serverRssMB} MB (filled in ${r.fillSeconds} s, ` +
          `compacted in ${r.settleSeconds} s more)`,
      );
    }
  } finally {
    await client.close();
    await server.stop();
  }
  const kinds = results.flatMap((r) => [r.insert, r.update, r.delete]);
  const slowest = Math.min(...kinds.map((k) => k.perSecond));
  const pass = slowest >= GOAL_WRITES_PER_SECOND;
  const missed = kinds.filter((k) => k.perSecond < GOAL_WRITES_PER_SECOND);
  const serverBound = missed.filter((k) => k.limitedBy !== 'client');
  const us = (list: number[]): string => `${Math.min(...list)}-${Math.max(...list)} µs`;
  const verdict = pass
    ? `goal of ${GOAL_WRITES_PER_SECOND} writes/s: met at every size`
    : serverBound.length === 0
      ? `goal of ${GOAL_WRITES_PER_SECOND} writes/s: missed (slowest ${slowest}/s); the client is ` +
        `the limit: ${us(missed.map((k) => k.clientCpuUsPerWrite))} of its CPU per write against ` +
        `${us(missed.map((k) => k.serverCpuUsPerWrite ?? 0))} of the server's`
      : `goal of ${GOAL_WRITES_PER_SECOND} writes/s: missed (slowest ${slowest}/s) with the ` +
        `server the limit in ${serverBound.length} of ${kinds.length} measurements`;
  say(verdict);
  if (values.json) {
    console.log(
      JSON.stringify({
        bench: 'test-mongod write rate',
        inFlight: IN_FLIGHT,
        opsPerKind: ops,
        server: values['in-process'] ? 'in-process' : 'separate process',
        persistence: !values.memory,
        goalWritesPerSecond: GOAL_WRITES_PER_SECOND,
        pass,
        verdict,
        loadAverage: os.loadavg()[0],
        pingCeiling: ceiling,
        results,
      }),
    );
  }
  // Fail only when the server is what holds writes below the goal.
  if (serverBound.length > 0 && !values['no-goal']) {
    if (values.json) console.error(verdict);
    process.exitCode = 1;
  }
}

await main();
