/**
 * `changeq pause|resume --ingest | --worker NAME [--wait]`: sets or clears the pause flag in
 * Redis (the store's pause.ts); the active process obeys it at its next safe point and says so
 * in its report, which `--wait` waits for and `changeq status` shows.
 */
import type { Redis } from 'ioredis';
import { UserError, sleep } from '@changeq/shared';
import {
  describePauseTarget,
  readPause,
  requestPause,
  type PauseReport,
  type PauseRequest,
  type PauseTarget,
} from '@changeq/store';
import { connectRedis } from '../connect.js';
import type { Settings } from '../settings.js';

/** A pause as `changeq status` shows it. */
export interface PauseStatus {
  /**
   * `running`; `pausing`: asked, not in effect yet (not seen yet, or handler calls still
   * running); `paused`: in effect; `resuming`: cleared, not seen yet. With no process
   * reporting (none runs), `paused` or `running` by the flag alone: the next process obeys it.
   */
  state: 'running' | 'pausing' | 'paused' | 'resuming';
  /** When the operator asked for the pause (null: no pause asked). */
  requestedAt: string | null;
  /** Whether a live process reports on it (false: none runs). */
  reported: boolean;
  /** The process reporting. */
  process: { pid: number; host: string } | null;
  /** Since when the process is in its reported state. */
  since: string | null;
  /** A worker's handler calls still running while pausing. */
  runningCalls: number | null;
}

export function pauseStatus(request: PauseRequest | null, report: PauseReport | null): PauseStatus {
  const base = {
    requestedAt: request?.at ?? null,
    reported: report !== null,
    process: report ? { pid: report.pid, host: report.host } : null,
    since: report?.since ?? null,
    runningCalls: report?.running ?? null,
  };
  if (report === null) return { state: request ? 'paused' : 'running', ...base };
  if (request === null)
    return { state: report.state === 'running' ? 'running' : 'resuming', ...base };
  if (report.request !== request.id) return { state: 'pausing', ...base };
  return { state: report.state === 'paused' ? 'paused' : 'pausing', ...base };
}

/** `[PAUSED since …]` and the like, for the status lines (empty when running). */
export function describePause(status: PauseStatus): string {
  switch (status.state) {
    case 'running':
      return '';
    case 'paused':
      return status.reported
        ? ` [PAUSED since ${status.since}]`
        : ` [PAUSED: asked ${status.requestedAt}; no process runs, the next one starts paused]`;
    case 'pausing':
      return ` [pausing: asked ${status.requestedAt}${status.runningCalls ? `, ${status.runningCalls} handler calls still running` : ', not in effect yet'}]`;
    case 'resuming':
      return ' [resuming: not in effect yet]';
  }
}

export interface PauseFlags {
  ingest?: boolean;
  worker?: string;
  wait?: boolean;
  waitTimeout?: string;
}

function target(settings: Settings, flags: PauseFlags, command: string): PauseTarget {
  if (flags.ingest === true && flags.worker !== undefined) {
    throw new UserError(`${command}: --ingest and --worker exclude each other`, 'pass one of them');
  }
  if (flags.ingest === true) return { kind: 'ingest', id: settings.ingestId };
  if (flags.worker !== undefined) return { kind: 'worker', name: settings.worker(flags.worker) };
  throw new UserError(
    `${command} needs --ingest or --worker <name>`,
    `pass --ingest (the ingest of INGEST_ID) or --worker with one of: ${settings.workers.names.join(', ')}`,
  );
}

function waitTimeoutMs(raw: string | undefined): number {
  if (raw === undefined) return 60_000;
  const seconds = Number(raw);
  if (!/^\d+$/.test(raw) || seconds < 1 || seconds > 86_400) {
    throw new UserError(
      `--wait-timeout must be a whole number of seconds from 1 to 86400, got "${raw}"`,
      'pass e.g. --wait-timeout 60',
    );
  }
  return seconds * 1000;
}

export async function pauseCommand(
  settings: Settings,
  paused: boolean,
  flags: PauseFlags,
): Promise<void> {
  const command = paused ? 'pause' : 'resume';
  const chosen = target(settings, flags, command);
  const timeoutMs = waitTimeoutMs(flags.waitTimeout);
  const what = describePauseTarget(chosen);
  const redis = await connectRedis(settings);
  try {
    const request = await requestPause(redis, settings.prefix, chosen, paused);
    if (flags.wait !== true) {
      process.stdout.write(
        `${what}: ${paused ? 'pause' : 'resume'} asked; the active process obeys it within about a second (\`changeq status\` shows it; --wait waits for it)\n`,
      );
      return;
    }
    const status = await waitForEffect(redis, settings.prefix, chosen, request, timeoutMs);
    process.stdout.write(
      status.process
        ? `${what}: ${paused ? 'paused' : 'running'} (confirmed by pid ${status.process.pid} on ${status.process.host})\n`
        : `${what}: no process runs; the next one starts ${paused ? 'paused' : 'running'}\n`,
    );
  } finally {
    redis.disconnect();
  }
}

/** Polls the report until it answers `request` (pause) or says running (resume). */
async function waitForEffect(
  redis: Redis,
  prefix: string,
  chosen: PauseTarget,
  request: PauseRequest | null,
  timeoutMs: number,
): Promise<PauseStatus> {
  const deadline = Date.now() + timeoutMs;
  let said = '';
  for (;;) {
    const now = await readPause(redis, prefix, chosen);
    // The flag read back: another operator may have resumed or paused meanwhile.
    const status = pauseStatus(request === null ? null : now.request, now.report);
    if (request !== null && now.request?.id !== request.id) {
      throw new UserError(
        `${describePauseTarget(chosen)}: the pause was cleared or replaced while waiting (someone ran changeq resume or pause)`,
        'run `changeq status` to see where it stands',
      );
    }
    const done = request === null ? status.state === 'running' : status.state === 'paused';
    if (done) return status;
    const line = describePause(status).trim();
    if (line !== said) {
      process.stderr.write(`waiting: ${describePauseTarget(chosen)} ${line}\n`);
      said = line;
    }
    if (Date.now() >= deadline) {
      throw new UserError(
        `${describePauseTarget(chosen)} did not confirm the ${request ? 'pause' : 'resume'} within ${Math.round(timeoutMs / 1000)} s (${line || status.state})`,
        request
          ? 'a handler call may still be running: see `changeq status`, or wait longer with --wait-timeout'
          : 'see `changeq status` and the process log',
      );
    }
    await sleep(200);
  }
}
