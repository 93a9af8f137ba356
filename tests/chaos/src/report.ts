/** The matrix as a table for people, or as one JSON object (`--json`). */
import type { RowResult } from './measure.js';
import type { Settings } from './settings.js';

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  redis: string;
  platform: string;
}

export interface MatrixReport {
  version: 1;
  at: string;
  command: string;
  mode: Settings['mode'];
  seed: number;
  machine: Machine;
  settings: Settings & { leaseTtlMs: number; workers: readonly string[]; redisAppendfsync: string };
  /** Every row that ran met its expectation (pending rows do not count). */
  passed: boolean;
  durationMs: number;
  rows: RowResult[];
}

/** Whether a row lets the command succeed. */
export function rowPassed(row: RowResult): boolean {
  return row.status === 'pass' || row.status === 'pending';
}

const seconds = (ms: number | null) => (ms === null ? '—' : `${(ms / 1000).toFixed(1)} s`);

/** The table: one line per row, then what failed and what was noticed. */
export function renderTable(report: MatrixReport): string {
  const columns: [string, (row: RowResult) => string][] = [
    ['row', (row) => row.id],
    ['result', (row) => row.status],
    ['faults', (row) => String(row.faults)],
    ['written', (row) => String(row.written)],
    ['enqueued', (row) => String(row.enqueued)],
    ['handled', (row) => String(row.handled)],
    ['lost', (row) => String(row.lost)],
    ['dup jobs', (row) => String(row.duplicates)],
    ['re-runs', (row) => String(row.reruns)],
    ['order', (row) => String(row.orderViolations)],
    ['recover', (row) => seconds(row.recoverMs)],
  ];
  const cells = report.rows.map((row) =>
    row.status === 'pending'
      ? [row.id, 'pending', ...columns.slice(2).map(() => '')]
      : columns.map(([, cell]) => cell(row)),
  );
  const widths = columns.map(([head], i) =>
    Math.max(head.length, ...cells.map((line) => line[i]!.length)),
  );
  const line = (values: string[]) =>
    values
      .map((value, i) => (i < 2 ? value.padEnd(widths[i]!) : value.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const m = report.machine;
  const out = [
    `changeq fault matrix (${report.mode}, seed ${report.seed}) ${report.at}`,
    `${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Node ${m.node}, Redis ${m.redis} (AOF ${report.settings.redisAppendfsync}), ${m.platform}`,
    `writer ${report.settings.writeRate} changes/s over ${report.settings.documents} documents, workers ${report.settings.workers.join(', ')}, lease ${report.settings.leaseTtlMs} ms`,
    '',
    line(columns.map(([head]) => head)),
    ...cells.map(line),
    '',
  ];
  for (const row of report.rows) {
    const lines = [
      ...row.reasons.map((reason) => `  FAIL ${reason}`),
      ...[...row.examples.lost, ...row.examples.duplicates, ...row.examples.orderViolations].map(
        (example) => `  e.g. ${example}`,
      ),
      ...row.notes.map((note) => `  ${note}`),
    ];
    if (lines.length > 0) out.push(`${row.id}: ${row.title}`, ...lines);
  }
  out.push(
    '',
    `${report.passed ? 'every row met its expectation' : 'SOME ROWS FAILED'} (${seconds(report.durationMs)})`,
  );
  return out.join('\n');
}

/** The matrix as a Markdown table with the run's facts above it (docs/reliability.md). */
export function renderMarkdown(report: MatrixReport): string {
  const m = report.machine;
  const cell = (value: string) => value.replace(/\|/g, '\\|');
  const lines = [
    `\`${report.command}\`, ${report.at.slice(0, 10)}: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ` +
      `Node ${m.node}, Redis ${m.redis} (AOF \`appendfsync ${report.settings.redisAppendfsync}\`), ${m.platform}; ` +
      `the writer at ${report.settings.writeRate} changes/s over ${report.settings.documents} documents in 3 collections, ` +
      `workers ${report.settings.workers.map((name) => `\`${name}\``).join(', ')} with a ${report.settings.leaseTtlMs / 1000} s lease; ` +
      `${(report.durationMs / 60_000).toFixed(1)} minutes in all.`,
    '',
    '| row | fault | result | faults | written | enqueued | handled | lost | dup jobs | re-runs | order | recover |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const row of report.rows) {
    if (row.status === 'pending') {
      lines.push(
        `| \`${row.id}\` | ${cell(row.title)} | pending (${cell(row.notes[0] ?? '')}) | | | | | | | | | |`,
      );
      continue;
    }
    const result = row.status === 'pass' ? 'pass' : `**${row.status}**`;
    lines.push(
      `| \`${row.id}\` | ${cell(row.title)} | ${result} | ${row.faults} | ${row.written} | ${row.enqueued} | ${row.handled} | ${row.lost} | ${row.duplicates} | ${row.reruns} | ${row.orderViolations} | ${seconds(row.recoverMs)} |`,
    );
  }
  return lines.join('\n');
}
