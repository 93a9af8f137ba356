// The bench's own logic on made-up figures: percentiles, the goals' verdicts and reasons, the
// report and the charts. The benchmark itself (servers, processes) is `npm run bench`, not a test.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeCharts } from '../src/charts.js';
import { judge } from '../src/goals.js';
import type { Throughput } from '../src/measure/figure.js';
import { OptionError, parseOptions } from '../src/options.js';
import { textReport } from '../src/report.js';
import { distribution, quantile } from '../src/stats.js';
import { fixture } from './fixture.js';

describe('stats', () => {
  it('takes percentiles by nearest rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantile(values, 0.5)).toBe(50);
    expect(quantile(values, 0.99)).toBe(99);
    expect(distribution([...values].reverse())).toMatchObject({ p50: 50, p99: 99, max: 100 });
  });
});

/** Gives the figure `id` of `figures` these peak RSS and RSS at its first job. */
function withRss(
  figures: Throughput[],
  id: string,
  rssPeakMb: Record<string, number>,
  rssStartMb: number,
): void {
  const figure = figures.find((f) => f.id === id)!;
  figure.rssPeakMb = rssPeakMb;
  figure.rssStartMb = rssStartMb;
}

describe('goals', () => {
  const goals = judge(fixture());
  const goal = (id: string) => goals.find((g) => g.id === id)!;

  it('judges the drain against 0.8 x addBulk and the 40-line pipeline, with the saturated process', () => {
    expect(goal('drain').pass).toBe(false); // 20,000 < 0.8 x 30,000
    expect(goal('drain').reason).toContain('ingest process is CPU-bound (0.95 cores');
    // Bare read 35.0 µs + bare addBulk 46.7 µs of CPU per event on 2 cores: 24,490 events/s.
    expect(goal('drain').reason).toContain('at most 24490 events/s = 0.82x addBulk');
  });

  it('bounds latency p99 by 1.25 x (a) + 5 ms, and by 20 ms at 300 writes/s', () => {
    expect(goal('latency-300').pass).toBe(true); // 12 <= 17.5 and < 20
    expect(goal('latency-1000').pass).toBe(false); // 40 > 30
    expect(goal('latency-1000').reason).toContain('the ingest stage adds the most');
    // 200,000 µs of CPU over 100 writes (the fixture gives both pipelines the same cost).
    expect(goal('latency-1000').reason).toContain(
      'CPU per event: changeq 2000 µs (ingest 1000, workers 1000 in 3 processes, Redis+server 0), ' +
        '(a) 2000 µs (pipeline 1000, workers 1000 in 1 process, Redis+server 0)',
    );
  });

  it('compares the worker with the bare Worker at each concurrency', () => {
    expect(goal('worker-c1').pass).toBe(true);
    expect(goal('worker-c16').pass).toBe(false);
    // (50 + 50) ÷ (70 + 50) µs per job: what the CPU of the worker and Redis alone explains.
    expect(goal('worker-c16').reason).toContain(
      'CPU per job: changeq worker 70 µs (main thread 45, other threads 25) + redis 50 µs, ' +
        'bare 50 µs (main thread 40, other threads 10) + redis 50 µs (that CPU alone would give 0.83x)',
    );
    // Main threads busy 180 and 200 ms of the 1,000: the rest of the time each waited.
    expect(goal('worker-c16').reason).toContain(
      "the worker's main thread was busy 18% of the time (bare's 20%) and waited for Redis's replies the rest; " +
        'a job waited 1.88 ms on average between its reply and its turn, for its place in fetch order',
    );
    expect(goal('worker-rss').pass).toBe(true);
    expect(goal('ingest-rss').pass).toBe(true);
  });

  it('splits a missed ingest RSS into what it held at its first job and what draining added', () => {
    const results = fixture();
    const figures = results.drain!.figures;
    withRss(figures, 'changeq', { ingest: 230 }, 110);
    withRss(figures, 'fortyLine', { pipeline: 190 }, 80);
    const rss = judge(results).find((g) => g.id === 'ingest-rss')!;
    expect(rss.pass).toBe(false);
    expect(rss.reason).toContain('ingest 110 MB at its first job + 120 MB while draining');
    expect(rss.reason).toContain(
      '(a), one isolate: 80 MB at its first job + 110 MB while draining',
    );
  });

  it("splits a missed worker RSS beside the bare Worker's of the same drain", () => {
    const results = fixture();
    withRss(results.workers!, 'changeq-noop-c16', { worker: 155 }, 88);
    withRss(results.workers!, 'bare-noop-c16', { 'bare worker': 129 }, 85);
    const rss = judge(results).find((g) => g.id === 'worker-rss')!;
    expect(rss.pass).toBe(false);
    expect(rss.reason).toBe(
      'changeq: 88 MB at its first job + 67 MB while draining; ' +
        'bare BullMQ Worker, same drain: 85 MB at its first job + 44 MB while draining',
    );
  });
});

describe('report and charts', () => {
  it('prints every goal with pass or MISS', () => {
    const results = fixture();
    results.goals = judge(results);
    const text = textReport(results);
    expect(text).toContain('MISS  drain');
    expect(text).toContain('pass  latency p99 at 300 writes/s');
  });

  it("reports the warm-up's latency beside the measured window's, without judging it", () => {
    const results = fixture();
    results.goals = judge(results);
    const text = textReport(results);
    // changeq at 300/s: p99 12 ms measured, the warm-up's 48 ms (the fixture's startup).
    expect(text).toContain('in the 5 s of warm-up before (not judged) p50/p99 12.0/48.0');
    expect(results.goals.find((g) => g.id === 'latency-300')?.pass).toBe(true);
  });

  it('draws the three charts as SVG', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'changeq-bench-charts-'));
    try {
      const files = await writeCharts(fixture(), dir);
      expect(files.map((f) => f.slice(dir.length + 1))).toEqual([
        'drain.svg',
        'workers.svg',
        'latency.svg',
      ]);
      const drain = readFileSync(join(dir, 'drain.svg'), 'utf8');
      expect(drain.startsWith('<svg')).toBe(true);
      expect(drain).toContain('changeq ingest');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('options', () => {
  it('rejects an unknown section with one line naming the choices', () => {
    expect(() => parseOptions(['--only', 'drian'])).toThrow(OptionError);
    expect(() => parseOptions(['--only', 'drian'])).toThrow(/pick from drain, latency/);
  });

  it('sizes the no-op worker drains with --jobs', () => {
    expect(parseOptions([]).jobs).toBe(20_000);
    expect(parseOptions(['--quick']).jobs).toBe(4000);
    expect(parseOptions(['--jobs', '40000']).jobs).toBe(40_000);
    expect(() => parseOptions(['--jobs', '40k'])).toThrow(
      '--jobs must be a whole number of at least 1000, got "40k"',
    );
  });
});
