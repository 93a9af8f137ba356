/**
 * The charts of a run, drawn with vega-lite (compiled to a vega spec) and rendered to SVG by vega
 * in Node (renderer "none", no canvas): throughput bars against the ceilings and alternatives,
 * and the latency CDFs of changeq and the 40-line pipeline at both write rates.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Results } from './results.js';

const SIDE_COLORS = {
  domain: ['ceiling', 'alternative', 'changeq'],
  range: ['#9e9e9e', '#f0a030', '#2f6db5'],
};

async function svgOf(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function drainChart(r: Results): TopLevelSpec | null {
  const figures = r.drain?.figures;
  if (!figures?.length) return null;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Drain of a ${r.drain!.backlogEvents.toLocaleString('en-US')}-event backlog (events/s, higher is better)`,
    width: 480,
    data: {
      values: figures.map((f) => ({ figure: f.label, side: f.side, perSecond: f.perSecond })),
    },
    layer: [
      {
        mark: 'bar',
        encoding: {
          y: {
            field: 'figure',
            type: 'nominal',
            sort: null,
            title: null,
            axis: { labelLimit: 320 },
          },
          x: { field: 'perSecond', type: 'quantitative', title: 'events/s' },
          color: { field: 'side', type: 'nominal', scale: SIDE_COLORS, title: null },
        },
      },
      {
        mark: { type: 'text', align: 'left', dx: 3 },
        encoding: {
          y: { field: 'figure', type: 'nominal', sort: null },
          x: { field: 'perSecond', type: 'quantitative' },
          text: { field: 'perSecond', type: 'quantitative', format: ',' },
        },
      },
    ],
  };
}

function workerChart(r: Results): TopLevelSpec | null {
  if (!r.workers?.length) return null;
  const values = r.workers.map((f) => {
    const [kind, handler, c] = f.id.split('-');
    return {
      worker: kind === 'bare' ? 'bare BullMQ Worker' : 'changeq worker',
      handler: handler === 'noop' ? 'no-op handler' : '5 ms handler',
      concurrency: Number(c?.slice(1)),
      perSecond: f.perSecond,
    };
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Worker throughput (events/s, higher is better)',
    data: { values },
    facet: {
      column: {
        field: 'handler',
        type: 'nominal',
        title: null,
        sort: ['no-op handler', '5 ms handler'],
      },
    },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 240,
      mark: 'bar',
      encoding: {
        x: { field: 'concurrency', type: 'ordinal', title: 'concurrency', axis: { labelAngle: 0 } },
        xOffset: { field: 'worker', type: 'nominal' },
        y: { field: 'perSecond', type: 'quantitative', title: 'events/s' },
        color: {
          field: 'worker',
          type: 'nominal',
          scale: {
            domain: ['bare BullMQ Worker', 'changeq worker'],
            range: ['#9e9e9e', '#2f6db5'],
          },
          title: null,
          legend: { labelLimit: 320 },
        },
      },
    },
  };
}

function latencyChart(r: Results): TopLevelSpec | null {
  if (!r.latency?.length) return null;
  const values = r.latency.flatMap((run) =>
    run.cdf.map((p) => ({
      pipeline: run.pipeline === 'changeq' ? 'changeq' : '(a) 40-line + bare Workers',
      rate: `${run.rate} writes/s`,
      ms: Math.max(p.ms, 0.1),
      share: p.q,
    })),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title:
      'Latency from a write to its handler start: share of events within x ms (left and higher is better)',
    data: { values },
    facet: {
      column: {
        field: 'rate',
        type: 'nominal',
        title: null,
        sort: ['300 writes/s', '1000 writes/s'],
      },
    },
    spec: {
      width: 300,
      height: 220,
      mark: { type: 'line', interpolate: 'step-after' },
      encoding: {
        x: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'ms (log scale)' },
        y: {
          field: 'share',
          type: 'quantitative',
          axis: { format: '%' },
          title: 'events',
          scale: { domain: [0, 1] },
        },
        color: {
          field: 'pipeline',
          type: 'nominal',
          scale: {
            domain: ['(a) 40-line + bare Workers', 'changeq'],
            range: ['#f0a030', '#2f6db5'],
          },
          title: null,
          legend: { labelLimit: 320, orient: 'bottom' },
        },
      },
    },
  };
}

/** Writes the charts of the sections that ran; returns the files written. */
export async function writeCharts(r: Results, dir: string): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const charts: [string, TopLevelSpec | null][] = [
    ['drain.svg', drainChart(r)],
    ['workers.svg', workerChart(r)],
    ['latency.svg', latencyChart(r)],
  ];
  for (const [file, spec] of charts) {
    if (!spec) continue;
    const path = join(dir, file);
    writeFileSync(path, await svgOf(spec));
    written.push(path);
  }
  return written;
}
