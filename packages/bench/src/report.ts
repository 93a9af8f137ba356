/** The report as text: one table per section, every figure with its ratios, then the goals. */
import { coresOf } from './system.js';
import { cpuPerEvent, type Throughput } from './measure/figure.js';
import type { LatencyRun } from './measure/latency.js';
import type { Results } from './results.js';

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const pad = (s: string, n: number) => s.padStart(n);
const ratio = (a: number, b: number | undefined) => (b ? `${(a / b).toFixed(2)}x` : '–');

/** CPU µs per event of each process that ran, e.g. "bench 3.1 redis 20.4 mongo 9.8 ingest 30.2". */
const cpuLine = (f: Throughput) =>
  Object.keys(f.cost.cpu)
    .map((name) => `${name} ${cpuPerEvent(f, name).toFixed(1)}`)
    .join(', ');

const rssLine = (f: Throughput, skip: string[]) =>
  Object.entries(f.rssPeakMb)
    .filter(([name]) => !skip.includes(name))
    .map(([name, mb]) => `${name} ${mb.toFixed(0)} MB`)
    .join(', ');

function drainSection(r: Results, lines: string[]): void {
  const drain = r.drain;
  if (!drain) return;
  const by = (id: string) => drain.figures.find((f) => f.id === id)?.perSecond;
  const refs = ['read', 'addBulk', 'fortyLine', 'naive', 'mongochangestream'] as const;
  lines.push(
    `\nDRAIN of a ${fmt(drain.backlogEvents)}-event backlog (events/s; ratios: this figure ÷ the column's)`,
  );
  lines.push(
    `${'figure'.padEnd(38)}${pad('events/s', 9)}${pad('÷read', 7)}${pad('÷bulk', 7)}${pad('÷(a)', 7)}${pad('÷(b)', 7)}${pad('÷(c)', 7)}${pad('others', 7)}  CPU µs per event per process; peak RSS`,
  );
  for (const f of drain.figures) {
    lines.push(
      `${f.label.padEnd(38)}${pad(fmt(f.perSecond), 9)}${refs.map((id) => pad(ratio(f.perSecond, by(id)), 7)).join('')}${pad(f.cost.othersCores.toFixed(2), 7)}  ${cpuLine(f)}${Object.keys(f.rssPeakMb).length ? `; ${rssLine(f, [])}` : ''}`,
    );
    const start =
      f.rssStartMb === undefined ? '' : `; ${f.rssStartMb.toFixed(0)} MB RSS at its first job`;
    lines.push(`${''.padEnd(38)}  ${f.note}${start}`);
  }
}

function latencySection(r: Results, lines: string[]): void {
  if (!r.latency?.length) return;
  lines.push(
    '\nLATENCY from a write to its handler start (ms; stages: write → job added → handler start)',
  );
  lines.push(
    `${'pipeline'.padEnd(26)}${pad('rate/s', 7)}${pad('p50', 8)}${pad('p99', 8)}${pad('max', 8)}${pad('÷(a) p99', 10)}  ${'ingest p50/p99'.padEnd(16)}${'worker p50/p99'.padEnd(16)}${pad('lost', 5)}${pad('others', 7)}  peak RSS`,
  );
  for (const run of r.latency) {
    const a = r.latency.find((x) => x.rate === run.rate && x.pipeline === 'fortyLine');
    const d = run.endToEnd;
    lines.push(
      `${(run.pipeline === 'changeq' ? 'changeq' : '(a) 40-line + bare Workers').padEnd(26)}${pad(String(run.rate), 7)}${pad(d.p50.toFixed(1), 8)}${pad(d.p99.toFixed(1), 8)}${pad(d.max.toFixed(1), 8)}${pad(ratio(d.p99, a?.endToEnd.p99), 10)}  ${`${run.ingestStage.p50.toFixed(1)}/${run.ingestStage.p99.toFixed(1)}`.padEnd(16)}${`${run.workerStage.p50.toFixed(1)}/${run.workerStage.p99.toFixed(1)}`.padEnd(16)}${pad(String(run.missing), 5)}${pad(run.cost.othersCores.toFixed(2), 7)}  ${Object.entries(
        run.rssPeakMb,
      )
        .filter(([k]) => k !== 'redis' && k !== 'mongo')
        .map(([k, v]) => `${k} ${v.toFixed(0)}`)
        .join(', ')} MB`,
    );
    lines.push(
      `${''.padEnd(26)}  writes sent at ${run.achievedRate ?? '?'}/s${startupNote(run)}; cores busy: ${Object.keys(
        run.cost.cpu,
      )
        .map((k) => `${k} ${coresOf(run.cost, k).toFixed(2)}`)
        .join(', ')}`,
    );
  }
}

/** The warm-up's own latency: the processes' first seconds, reported, not judged. */
function startupNote(run: LatencyRun): string {
  const d = run.startup;
  if (d === undefined || d.count === 0) return '';
  return `; in the ${run.warmupSeconds} s of warm-up before (not judged) p50/p99 ${d.p50.toFixed(1)}/${d.p99.toFixed(1)}`;
}

function workerSection(r: Results, lines: string[]): void {
  if (!r.workers?.length) return;
  lines.push('\nWORKER throughput (events/s; one queue, jobs over 1,000 documents)');
  lines.push(
    `${'handler'.padEnd(10)}${pad('conc.', 6)}${pad('bare', 9)}${pad('changeq', 9)}${pad('÷bare', 7)}  CPU µs/job changeq worker (bare) · redis (bare); changeq worker peak RSS (at its first job)`,
  );
  for (const handler of ['noop', 'sleep5']) {
    for (const c of [1, 16, 32]) {
      const bare = r.workers.find((f) => f.id === `bare-${handler}-c${c}`);
      const ours = r.workers.find((f) => f.id === `changeq-${handler}-c${c}`);
      if (!bare || !ours) continue;
      lines.push(
        `${(handler === 'noop' ? 'no-op' : '5 ms').padEnd(10)}${pad(String(c), 6)}${pad(fmt(bare.perSecond), 9)}${pad(fmt(ours.perSecond), 9)}${pad(ratio(ours.perSecond, bare.perSecond), 7)}  ${cpuPerEvent(ours, 'worker').toFixed(0)} (${cpuPerEvent(bare, 'bare worker').toFixed(0)}) · ${cpuPerEvent(ours, 'redis').toFixed(0)} (${cpuPerEvent(bare, 'redis').toFixed(0)}); ${(ours.rssPeakMb.worker ?? 0).toFixed(0)} MB${ours.rssStartMb === undefined ? '' : ` (${ours.rssStartMb.toFixed(0)})`}`,
      );
    }
  }
}

function writeRateSection(r: Results, lines: string[]): void {
  const w = r.writeRate;
  if (!w) return;
  lines.push(
    `\nTEST SERVER single-document writes/s (64 in flight; ping ceiling ${fmt(w.pingCeiling.perSecond)} round trips/s)`,
  );
  lines.push(
    `${'documents'.padEnd(12)}${pad('insert', 9)}${pad('update', 9)}${pad('delete', 9)}  server CPU µs/write (i/u/d), RSS`,
  );
  for (const s of w.sizes) {
    lines.push(
      `${fmt(s.docs).padEnd(12)}${pad(fmt(s.insert.perSecond), 9)}${pad(fmt(s.update.perSecond), 9)}${pad(fmt(s.delete.perSecond), 9)}  ${[s.insert, s.update, s.delete].map((k) => k.serverCpuUsPerWrite ?? '–').join('/')}, ${s.serverRssMB} MB`,
    );
  }
  lines.push(`  ${w.verdict}`);
}

export function textReport(r: Results): string {
  const m = r.machine;
  const lines = [
    `changeq benchmark — ${r.startedAt}, ${r.seconds.toFixed(0)} s${r.quick ? ' (--quick)' : ''}`,
    `machine: ${m.cores} cores, ${m.cpuModel}, Node ${m.node}, load average ${m.loadStart.toFixed(2)} at start, ${m.loadEnd?.toFixed(2) ?? '?'} at end`,
    `command: ${r.command}`,
    'CPU per process from /proc (bench = this process; redis, mongo = the servers); "others" = cores the rest of the machine used meanwhile.',
  ];
  drainSection(r, lines);
  latencySection(r, lines);
  workerSection(r, lines);
  writeRateSection(r, lines);
  lines.push('\nGOALS (issue 11)');
  for (const g of r.goals) {
    lines.push(`  ${g.pass ? 'pass' : 'MISS'}  ${g.goal}: ${g.measured}`);
    if (g.reason) lines.push(`        reason: ${g.reason}`);
  }
  lines.push(
    `\nothers: at most ${r.others.maxCores.toFixed(2)} cores used by the rest of the machine during a figure`,
  );
  if (r.others.warning) lines.push(`WARNING: ${r.others.warning}`);
  return lines.join('\n');
}
