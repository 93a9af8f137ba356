#!/usr/bin/env node
/**
 * `npm run chaos [-- --quick] [-- --json]`: the fault matrix of docs/reliability.md. Starts its own
 * Redis and MongoDB-compatible server, then for each row an ingest and workers, streams changes,
 * injects one kind of fault, and measures what was lost, enqueued twice or run out of order.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, platform, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { redisServerBinary } from '@changeq/stack';
import { pendingResult, type RowResult } from './measure.js';
import { parseOptions, usageLine, USAGE, type Options } from './options.js';
import {
  renderMarkdown,
  renderTable,
  rowPassed,
  type Machine,
  type MatrixReport,
} from './report.js';
import { ROWS } from './rows.js';
import { runRow } from './run-row.js';
import { Servers } from './servers.js';
import { FULL, LEASE_TTL_MS, QUICK, WORKER_NAMES } from './settings.js';

function machine(): Machine {
  const version = spawnSync(redisServerBinary(), ['--version'], { encoding: 'utf8' }).stdout;
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    redis: /v=(\S+)/.exec(version)?.[1] ?? 'unknown',
    platform: `${platform()} ${release()}`,
  };
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    const line = usageLine(error);
    if (line === null) throw error;
    process.stderr.write(`${line}\n`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (options.list) {
    for (const row of ROWS)
      process.stdout.write(
        `${row.id.padEnd(26)} ${row.title}${row.pending ? ` (pending: ${row.pending})` : ''}\n`,
      );
    return 0;
  }
  const unknown = options.only.filter((id) => !ROWS.some((row) => row.id === id));
  if (unknown.length > 0) {
    process.stderr.write(
      `chaos: no row named ${unknown.join(', ')}. Fix: pick from ${ROWS.map((row) => row.id).join(', ')} (--list)\n`,
    );
    return 2;
  }
  const settings = options.quick ? QUICK : FULL;
  const rows = ROWS.filter((row) => options.only.length === 0 || options.only.includes(row.id));
  const progress = (line: string) => process.stderr.write(`${line}\n`);
  const started = Date.now();
  const runDir = mkdtempSync(join(tmpdir(), 'changeq-chaos-'));
  progress(
    `chaos: ${settings.mode} matrix, ${rows.length} rows, seed ${options.seed}; records in ${runDir}`,
  );
  const servers = await Servers.start();
  const onSignal = () => {
    progress('chaos: interrupted; stopping the servers');
    void servers.stop().finally(() => process.exit(130));
    setTimeout(() => process.exit(130), 5000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const results: RowResult[] = [];
  try {
    for (const [index, row] of rows.entries()) {
      if (row.pending) {
        results.push(pendingResult(row.id, row.title, row.pending));
        continue;
      }
      progress(`[${index + 1}/${rows.length}] ${row.id}: ${row.title}`);
      const result = await runRow(row, {
        servers,
        settings,
        runDir,
        index: index + 1,
        seed: options.seed,
        progress,
      }).catch((error: Error) => ({
        ...pendingResult(row.id, row.title, ''),
        status: 'fail' as const,
        notes: [],
        reasons: [`the row could not run: ${error.message.split('\n')[0]}`],
      }));
      progress(
        `  ${result.status} (${(result.durationMs / 1000).toFixed(1)} s)${result.reasons.length ? `: ${result.reasons.join('; ')}` : ''}`,
      );
      results.push(result);
    }
  } finally {
    await servers.stop();
  }
  const report: MatrixReport = {
    version: 1,
    at: new Date(started).toISOString(),
    command: `npm run chaos --${options.quick ? ' --quick' : ''}${options.json ? ' --json' : ''}${options.markdown ? ' --markdown' : ''}${options.only.length ? ` --only ${options.only.join(',')}` : ''} --seed ${options.seed}`,
    mode: settings.mode,
    seed: options.seed,
    machine: machine(),
    settings: {
      ...settings,
      leaseTtlMs: LEASE_TTL_MS,
      workers: WORKER_NAMES,
      redisAppendfsync: 'always',
    },
    passed: results.every(rowPassed),
    durationMs: Date.now() - started,
    rows: results,
  };
  const output = options.json
    ? JSON.stringify(report, null, 2)
    : options.markdown
      ? renderMarkdown(report)
      : renderTable(report);
  process.stdout.write(`${output}\n`);
  if (report.passed && !options.keep) rmSync(runDir, { recursive: true, force: true });
  else progress(`chaos: the handler call records are kept in ${runDir}`);
  return report.passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`chaos: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
