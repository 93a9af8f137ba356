/**
 * The goals of issue 11, each judged pass or miss on the run's own figures; a miss carries its
 * measured reason: which process kept a core busy, or which stage added the milliseconds.
 */
import { coresOf } from './system.js';
import { totalCpuPerEvent, type Throughput } from './measure/figure.js';
import type { LatencyRun } from './measure/latency.js';
import type { Goal, Results } from './results.js';

const ms = (n: number) => `${n.toFixed(1)} ms`;
const x = (n: number) => `${n.toFixed(2)}x`;

/** The process that kept the most of a core busy during a figure, e.g. "ingest 0.97 cores". */
function busiest(cost: Throughput['cost'], skip: string[] = []): string {
  const [name, cores] = Object.keys(cost.cpu)
    .filter((n) => !skip.includes(n))
    .map((n) => [n, coresOf(cost, n)] as const)
    .sort((a, b) => b[1] - a[1])[0] ?? ['none', 0];
  return `${name} ${cores.toFixed(2)} cores`;
}

/** A note when the rest of the machine took CPU during the figure. */
const busyMachine = (cost: Throughput['cost']) =>
  cost.othersCores > 0.25
    ? `; the rest of the machine kept ${cost.othersCores.toFixed(2)} cores busy meanwhile`
    : '';

/** Cores all our processes kept busy together during a figure. */
const ourCores = (cost: Throughput['cost']): number =>
  Object.keys(cost.cpu).reduce((sum, n) => sum + coresOf(cost, n), 0);

function cpuSaturation(f: Throughput, process: string, cores: number): string {
  const own = coresOf(f.cost, process);
  const total = ourCores(f.cost);
  if (own >= 0.9) return `the ${process} process is CPU-bound (${own.toFixed(2)} cores busy)`;
  if (total + f.cost.othersCores >= cores * 0.9)
    return `the machine is saturated (${(total + f.cost.othersCores).toFixed(2)} of ${cores} cores busy, ${f.cost.othersCores.toFixed(2)} of them by other processes; busiest of ours: ${busiest(f.cost)})`;
  return `no process is saturated (${process} ${own.toFixed(2)} cores, all ours ${total.toFixed(2)} of ${cores}): the ${process} waits`;
}

/** A process's CPU per job, split by thread when its main thread was measured. */
function cpuPerJob(f: Throughput, process: string): string {
  const all = (f.cost.cpu[process] ?? 0) / f.events;
  const main = f.cost.mainThread?.[process];
  if (main === undefined) return `${all.toFixed(0)} µs`;
  const mainPerJob = main / f.events;
  return `${all.toFixed(0)} µs (main thread ${mainPerJob.toFixed(0)}, other threads ${(all - mainPerJob).toFixed(0)})`;
}

/**
 * What a worker did when it was not computing: a Node process computes on its main thread only
 * (the others collect garbage), so the share of time that thread was idle is time it waited, and
 * in a drain with a no-op handler it waits for nothing but Redis's replies.
 */
function workerWait(ours: Throughput, bare: Throughput, cores: number): string {
  const busy = (f: Throughput, process: string) => {
    const main = f.cost.mainThread?.[process];
    return main === undefined ? undefined : main / (f.cost.ms * 1000);
  };
  const own = busy(ours, 'worker');
  const theirs = busy(bare, 'bare worker');
  if (own === undefined || theirs === undefined) return cpuSaturation(ours, 'worker', cores);
  const pct = (n: number) => `${Math.round(n * 100)}%`;
  const order =
    ours.fetchOrderWaitMs === undefined
      ? ''
      : `; a job waited ${ours.fetchOrderWaitMs.toFixed(2)} ms on average between its reply and its turn, for its place in fetch order`;
  const main =
    own >= 0.9
      ? `the worker's main thread is CPU-bound (busy ${pct(own)} of the time, bare's ${pct(theirs)})`
      : `the worker's main thread was busy ${pct(own)} of the time (bare's ${pct(theirs)}) and waited for Redis's replies the rest${order}`;
  return `${main}; Redis ${coresOf(ours.cost, 'redis').toFixed(2)} cores (bare's ${coresOf(bare.cost, 'redis').toFixed(2)}), all ours ${ourCores(ours.cost).toFixed(2)} of ${cores}`;
}

/**
 * The most any pipeline could drain on this machine: the CPU the bare read and the bare addBulk
 * spend per event (client and servers), which every pipeline spends at least, over its cores.
 */
function machineCeiling(read: Throughput | undefined, bulk: Throughput, cores: number): string {
  if (!read) return '';
  const readUs = totalCpuPerEvent(read);
  const addUs = totalCpuPerEvent(bulk);
  const most = (cores * 1e6) / (readUs + addUs);
  return (
    `; reading (bare: ${readUs.toFixed(1)} µs of CPU per event, client and servers) plus adding ` +
    `(bare addBulk: ${addUs.toFixed(1)} µs) leave any pipeline on ${cores} cores at most ` +
    `${Math.round(most)} events/s = ${x(most / bulk.perSecond)} addBulk`
  );
}

/**
 * What a pipeline's processes spent per event at a steady rate, by role: on a machine of two
 * cores, the CPU every event costs is what makes the next one wait (the latency's own cause).
 */
function cpuSplit(run: LatencyRun): string {
  const us = (names: string[]) =>
    names.reduce((sum, n) => sum + (run.cost.cpu[n] ?? 0), 0) / Math.max(1, run.writes);
  const names = Object.keys(run.cost.cpu);
  const reading = names.filter((n) => n === 'ingest' || n === 'pipeline');
  const workers = names.filter((n) => n.startsWith('worker'));
  const servers = names.filter((n) => n === 'redis' || n === 'mongo');
  const total = us([...reading, ...workers, ...servers]);
  // changeq runs a process per worker name, (a) one for all: each process has its fixed costs.
  const processes =
    workers.length === 0 ? '' : ` in ${workers.length} process${workers.length === 1 ? '' : 'es'}`;
  return (
    `${total.toFixed(0)} µs (${reading.join('+') || 'ingest'} ${us(reading).toFixed(0)}, ` +
    `workers ${us(workers).toFixed(0)}${processes}, Redis+server ${us(servers).toFixed(0)})`
  );
}

function latencyGoals(runs: LatencyRun[]): Goal[] {
  const goals: Goal[] = [];
  for (const rate of [...new Set(runs.map((r) => r.rate))]) {
    const cq = runs.find((r) => r.rate === rate && r.pipeline === 'changeq');
    const a = runs.find((r) => r.rate === rate && r.pipeline === 'fortyLine');
    if (!cq || !a) continue;
    const bound = 1.25 * a.endToEnd.p99 + 5;
    const under20 = rate !== 300 || cq.endToEnd.p99 < 20;
    const pass = cq.endToEnd.p99 <= bound && under20 && cq.missing === 0;
    const stages =
      `ingest stage p99 ${ms(cq.ingestStage.p99)} (a: ${ms(a.ingestStage.p99)}), ` +
      `worker stage p99 ${ms(cq.workerStage.p99)} (a: ${ms(a.workerStage.p99)})`;
    const reasons: string[] = [];
    if (cq.missing > 0) reasons.push(`${cq.missing} events never reached a handler`);
    if (cq.endToEnd.p99 > bound) {
      const worse =
        cq.ingestStage.p99 - a.ingestStage.p99 >= cq.workerStage.p99 - a.workerStage.p99
          ? 'the ingest stage'
          : 'the worker stage';
      reasons.push(`${worse} adds the most over (a): ${stages}`);
    } else if (!under20) {
      const slower =
        cq.ingestStage.p99 >= cq.workerStage.p99 ? 'the ingest stage' : 'the worker stage';
      reasons.push(`within (a)'s bound, not under 20 ms; the slower stage is ${slower}: ${stages}`);
    }
    reasons.push(`CPU per event: changeq ${cpuSplit(cq)}, (a) ${cpuSplit(a)}`);
    reasons.push(`busiest process: ${busiest(cq.cost)}${busyMachine(cq.cost)}`);
    goals.push({
      id: `latency-${rate}`,
      goal: `latency p99 at ${rate} writes/s ≤ 1.25 × (a) + 5 ms${rate === 300 ? ' and < 20 ms' : ''}`,
      measured: `changeq ${ms(cq.endToEnd.p99)}, (a) ${ms(a.endToEnd.p99)} → bound ${ms(bound)}`,
      pass,
      ...(pass ? {} : { reason: reasons.join('; ') }),
    });
  }
  return goals;
}

/**
 * Why the ingest's peak RSS is what it is, in the run's own figures: what it held when draining
 * began (two V8 isolates, the main thread and the stream reader, each with its runtime, modules
 * and connections) and what draining added (garbage V8 keeps between collections), beside (a).
 */
function rssReason(cq: Throughput, forty: Throughput | undefined, events: number): string {
  const split = (f: Throughput, name: string) =>
    rssSplit(f, name) ?? `${(f.rssPeakMb[name] ?? 0).toFixed(0)} MB`;
  return (
    `ingest ${split(cq, 'ingest')} ${events} events (two V8 isolates: main thread and stream reader)` +
    (forty ? `; (a), one isolate: ${split(forty, 'pipeline')}` : '')
  );
}

/**
 * The highest-peaked worker of the throughput runs, split as the ingest's is: what it held at its
 * first completed job (runtime, modules, connections, the first jobs fetched) and what running at
 * its concurrency added (jobs in flight, garbage V8 keeps between collections); beside it the
 * bare BullMQ Worker's of the same drain, the ceiling's own figure.
 */
function workerRssSplit(workers: readonly Throughput[]): string | undefined {
  const changeq = workers.filter((f) => f.side === 'changeq');
  const top = changeq.reduce<Throughput | undefined>(
    (a, f) => ((f.rssPeakMb.worker ?? 0) > (a?.rssPeakMb.worker ?? -1) ? f : a),
    undefined,
  );
  const ours = top === undefined ? undefined : rssSplit(top, 'worker');
  if (top === undefined || ours === undefined) return undefined;
  const bare = workers.find((f) => f.id === top.id.replace(/^changeq-/, 'bare-'));
  const theirs = bare === undefined ? undefined : rssSplit(bare, 'bare worker');
  return `${top.label}: ${ours}${theirs ? `; bare BullMQ Worker, same drain: ${theirs}` : ''}`;
}

/** A process's peak RSS as what it held at its first job and what the figure added after. */
function rssSplit(f: Throughput, name: string): string | undefined {
  const start = f.rssStartMb;
  if (start === undefined) return undefined;
  const peak = f.rssPeakMb[name] ?? 0;
  return `${start.toFixed(0)} MB at its first job + ${(peak - start).toFixed(0)} MB while draining`;
}

export function judge(results: Results): Goal[] {
  const goals: Goal[] = [];
  const cores = results.machine.cores;
  const drain = results.drain?.figures ?? [];
  const find = (id: string) => drain.find((f) => f.id === id);
  const cq = find('changeq');
  const bulk = find('addBulk');
  const forty = find('fortyLine');
  if (cq && bulk && forty) {
    const pass = cq.perSecond >= 0.8 * bulk.perSecond && cq.perSecond > forty.perSecond;
    goals.push({
      id: 'drain',
      goal: 'drain ≥ 0.8 × bare addBulk and ahead of (a)',
      measured: `${cq.perSecond} events/s = ${x(cq.perSecond / bulk.perSecond)} addBulk, ${x(cq.perSecond / forty.perSecond)} (a)`,
      pass,
      ...(pass
        ? {}
        : {
            reason: cpuSaturation(cq, 'ingest', cores) + machineCeiling(find('read'), bulk, cores),
          }),
    });
  }
  if (cq) {
    const peak = cq.rssPeakMb.ingest ?? 0;
    goals.push({
      id: 'ingest-rss',
      goal: 'ingest peak RSS < 200 MB while draining (default settings)',
      measured: `${peak.toFixed(0)} MB${forty ? ` ((a): ${(forty.rssPeakMb.pipeline ?? 0).toFixed(0)} MB)` : ''}`,
      pass: peak < 200,
      ...(peak < 200
        ? {}
        : {
            reason: rssReason(cq, forty, results.drain?.backlogEvents ?? 0),
          }),
    });
  }
  const changeqWorkers = (results.workers ?? []).filter((f) => f.side === 'changeq');
  const workerPeaks = [
    ...changeqWorkers.map((f) => f.rssPeakMb.worker ?? 0),
    ...(results.latency ?? [])
      .filter((r) => r.pipeline === 'changeq')
      .flatMap((r) =>
        Object.entries(r.rssPeakMb)
          .filter(([k]) => k.startsWith('worker'))
          .map(([, v]) => v),
      ),
  ];
  if (workerPeaks.length > 0) {
    const peak = Math.max(...workerPeaks);
    const split = workerRssSplit(results.workers ?? []);
    goals.push({
      id: 'worker-rss',
      goal: 'worker peak RSS < 150 MB',
      measured: `${peak.toFixed(0)} MB (highest of every changeq worker process of the run${split ? `; ${split}` : ''})`,
      pass: peak < 150,
      ...(peak < 150 ? {} : { reason: split ?? 'the worker of a latency run' }),
    });
  }
  for (const c of [1, 16, 32]) {
    const bare = results.workers?.find((f) => f.id === `bare-noop-c${c}`);
    const ours = results.workers?.find((f) => f.id === `changeq-noop-c${c}`);
    if (!bare || !ours) continue;
    const pass = ours.perSecond >= bare.perSecond;
    const perEvent = (f: Throughput, name: string) =>
      ((f.cost.cpu[name] ?? 0) / f.events).toFixed(0);
    // The worker and Redis share the machine: their CPU per job together bounds the rate, so
    // its ratio says how much of a miss that CPU explains, and how much is waiting.
    const pairCost = (f: Throughput, name: string) =>
      ((f.cost.cpu[name] ?? 0) + (f.cost.cpu.redis ?? 0)) / f.events;
    goals.push({
      id: `worker-c${c}`,
      goal: `worker, no-op handler, concurrency ${c} ≥ bare BullMQ Worker`,
      measured: `${ours.perSecond} vs ${bare.perSecond} events/s = ${x(ours.perSecond / bare.perSecond)}`,
      pass,
      ...(pass
        ? {}
        : {
            reason:
              `CPU per job: changeq worker ${cpuPerJob(ours, 'worker')} + redis ${perEvent(ours, 'redis')} µs, ` +
              `bare ${cpuPerJob(bare, 'bare worker')} + redis ${perEvent(bare, 'redis')} µs ` +
              `(that CPU alone would give ${x(pairCost(bare, 'bare worker') / pairCost(ours, 'worker'))}); ` +
              workerWait(ours, bare, cores),
          }),
    });
  }
  if (results.latency) goals.push(...latencyGoals(results.latency));
  if (results.writeRate) {
    const slowestOf = (s: {
      insert: { perSecond: number };
      update: { perSecond: number };
      delete: { perSecond: number };
    }) => Math.min(s.insert.perSecond, s.update.perSecond, s.delete.perSecond);
    const sizes = [...results.writeRate.sizes].sort((a, b) => a.docs - b.docs);
    const slowest = Math.min(...sizes.map(slowestOf));
    // Flat: the largest collection's slowest kind of write keeps 80% of the smallest one's.
    const flatness =
      sizes.length > 1 ? slowestOf(sizes[sizes.length - 1]!) / slowestOf(sizes[0]!) : 1;
    const pass = slowest >= 10_000 && flatness >= 0.8;
    const bySize = sizes.map((s) => `${s.docs.toLocaleString('en-US')}: ${slowestOf(s)}`);
    goals.push({
      id: 'test-server',
      goal: 'test server ≥ 10,000 single-document writes/s (64 in flight), flat across sizes',
      measured: `slowest kind per size (docs: writes/s) ${bySize.join(', ')}; largest ÷ smallest ${x(flatness)}`,
      pass,
      ...(pass ? {} : { reason: results.writeRate.verdict }),
    });
  }
  return goals;
}
