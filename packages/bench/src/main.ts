/**
 * npm run bench: starts its own servers and measures, in one run, the ceilings, the alternatives
 * and changeq (see docs/benchmarks.md for how to read each figure). Progress goes to stderr; the
 * report (or, with --json, one JSON object) to stdout.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fillBacklog } from './backlog.js';
import { writeCharts } from './charts.js';
import { judge } from './goals.js';
import {
  bareAddBulk,
  bareRead,
  changeqDrain,
  drainPipeline,
  fortyLineDrain,
  mongochangestreamDrain,
  naiveDrain,
} from './measure/drain.js';
import type { Throughput } from './measure/figure.js';
import { WARMUP_SECONDS, latencyRun, type LatencyRun } from './measure/latency.js';
import { workerThroughput, type HandlerKind } from './measure/workers.js';
import { testServerWriteRate } from './measure/write-rate.js';
import { OptionError, USAGE, parseOptions, type Options } from './options.js';
import { textReport } from './report.js';
import type { Results } from './results.js';
import { startServers, type Servers } from './servers.js';
import { describeMachine } from './system.js';

const progress = (line: string) => process.stderr.write(`[bench] ${line}\n`);

async function drainSection(servers: Servers, o: Options): Promise<Results['drain']> {
  progress(`filling the change history with ${o.events.toLocaleString('en-US')} inserts`);
  const backlog = await fillBacklog(servers.client, o.events);
  const figures: Throughput[] = [];
  progress('bare driver read');
  const { figure: read, events } = await bareRead(servers, backlog);
  figures.push(read);
  progress('bare addBulk');
  figures.push(await bareAddBulk(servers, events));
  for (const drain of [
    fortyLineDrain(servers, backlog),
    naiveDrain(servers, backlog, o.quick ? 5000 : 20_000),
    mongochangestreamDrain(servers, backlog),
    changeqDrain(servers, backlog),
  ]) {
    progress(drain.label);
    try {
      figures.push(await drainPipeline(servers, drain));
    } catch (error) {
      // One stalled alternative must not lose the rest of the run: say so and go on.
      progress(`skipped: ${(error as Error).message}`);
    }
  }
  await servers.redis.flushdb();
  return { backlogEvents: o.events, figures };
}

async function latencySection(servers: Servers, o: Options): Promise<LatencyRun[]> {
  const runs: LatencyRun[] = [];
  for (const rate of [300, 1000]) {
    for (const pipeline of ['fortyLine', 'changeq'] as const) {
      progress(`latency at ${rate} writes/s: ${pipeline}`);
      const warmup = o.quick ? WARMUP_SECONDS.quick : WARMUP_SECONDS.full;
      runs.push(await latencyRun(servers, pipeline, rate, o.quick ? 3 : 10, warmup));
    }
  }
  return runs;
}

async function workerSection(servers: Servers, o: Options): Promise<Throughput[]> {
  const noop = { 1: Math.floor(o.jobs / 2), 16: o.jobs, 32: o.jobs };
  const counts: Record<HandlerKind, Record<number, number>> = o.quick
    ? { noop, sleep5: { 1: 100, 16: 1500, 32: 2500 } }
    : { noop, sleep5: { 1: 400, 16: 6000, 32: 10_000 } };
  const figures: Throughput[] = [];
  for (const handler of ['noop', 'sleep5'] as const) {
    for (const c of [1, 16, 32]) {
      for (const kind of ['bare', 'changeq'] as const) {
        progress(`worker: ${kind}, ${handler}, concurrency ${c}`);
        figures.push(await workerThroughput(servers, kind, handler, c, counts[handler][c]!));
      }
    }
  }
  return figures;
}

function othersOf(r: Results): Results['others'] {
  const costs = [
    ...(r.drain?.figures ?? []).map((f) => f.cost),
    ...(r.latency ?? []).map((f) => f.cost),
    ...(r.workers ?? []).map((f) => f.cost),
  ];
  const maxCores = Math.max(0, ...costs.map((c) => c.othersCores));
  return maxCores > 0.25
    ? {
        maxCores,
        warning: `the machine was not idle: other processes kept up to ${maxCores.toFixed(2)} cores busy during a figure (load average ${r.machine.loadStart.toFixed(2)} at start); figures are lower than on a quiet machine`,
      }
    : { maxCores };
}

async function main(): Promise<void> {
  let o: Options;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (error) {
    if (error instanceof OptionError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  if (o.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (o.from) {
    await output(JSON.parse(readFileSync(o.from, 'utf8')) as Results, o);
    return;
  }
  const started = performance.now();
  const results: Results = {
    bench: 'changeq',
    command: `npm run bench --${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
    quick: o.quick,
    startedAt: new Date().toISOString(),
    seconds: 0,
    machine: describeMachine(),
    goals: [],
    others: { maxCores: 0 },
  };
  const needsServers = o.sections.some((s) => s !== 'write-rate');
  if (needsServers) {
    const latencyWrites = 2 * 2 * (o.quick ? 3 : 10) * 1300;
    const servers = await startServers(o.events * 2 + latencyWrites + 50_000);
    try {
      if (o.sections.includes('drain')) results.drain = await drainSection(servers, o);
      if (o.sections.includes('latency')) results.latency = await latencySection(servers, o);
      if (o.sections.includes('workers')) results.workers = await workerSection(servers, o);
    } finally {
      await servers.stop();
    }
  }
  if (o.sections.includes('write-rate')) {
    progress('test server write rate');
    results.writeRate = await testServerWriteRate(o.quick);
  }
  results.machine.loadEnd = loadavg()[0] ?? 0;
  results.seconds = (performance.now() - started) / 1000;
  results.goals = judge(results);
  results.others = othersOf(results);
  await output(results, o);
}

async function output(results: Results, o: Options): Promise<void> {
  if (o.json) process.stdout.write(`${JSON.stringify(results)}\n`);
  else process.stdout.write(`${textReport(results)}\n`);
  if (o.charts) {
    const files = await writeCharts(results, o.charts);
    progress(`charts: ${files.join(', ')}`);
  }
}

await main();
// Connections of libraries (BullMQ, the driver) may linger for a moment: the run is over.
process.exit(process.exitCode ?? 0);
