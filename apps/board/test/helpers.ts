import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnTracked, terminate } from '@changeq/stack';

export const APP_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = join(APP_ROOT, '..', '..');
export const MAIN = join(APP_ROOT, 'dist', 'main.js');

/** Writes a workers.toml into a fresh folder; returns its path. */
export function writeWorkersFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'changeq-board-test-')), 'workers.toml');
  writeFileSync(file, text);
  return file;
}

export interface ChildRun {
  child: ChildProcess;
  pid: number;
  /** Everything written so far on stdout and stderr. */
  output(): string;
  /** Resolves with the first output line matching `pattern` (already printed or to come). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `node <script> ...args` with exactly `env` (plus PATH), tracked and killed on exit. */
export function startNode(script: string, args: string[], env: NodeJS.ProcessEnv): ChildRun {
  const child = spawnTracked(process.execPath, [script, ...args], {
    cwd: APP_ROOT,
    env: { PATH: process.env.PATH, LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${script}`);
  const pid = child.pid;
  let text = '';
  const watchers = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (const check of [...watchers]) check();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let hasExited = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      hasExited = true;
      for (const check of [...watchers]) check();
      resolve({ code, signal });
    }),
  );
  return {
    child,
    pid,
    output: () => text,
    exited,
    waitFor(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms:\n${text}`));
        }, timeoutMs);
        function check() {
          const line = text.split('\n').find((l) => pattern.test(l));
          if (line !== undefined || hasExited) {
            watchers.delete(check);
            clearTimeout(timer);
            if (line !== undefined) resolve(line);
            else reject(new Error(`exited before printing a line matching ${pattern}:\n${text}`));
          }
        }
        watchers.add(check);
        check();
      });
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      await terminate(pid, signal, 5000);
    },
  };
}

export interface BoardRun extends ChildRun {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  origin: string;
}

/** Starts the built board and waits until it listens (BOARD_PORT 0 lets the kernel pick). */
export async function startBoardProcess(env: NodeJS.ProcessEnv): Promise<BoardRun> {
  const run = startNode(MAIN, [], { BOARD_PORT: '0', ...env });
  const line = await run.waitFor(/Bull Board listening on/);
  const port = /"url":"https?:\/\/[^"]*?:(\d+)\//.exec(line)?.[1];
  if (port === undefined) throw new Error(`no port in ${line}`);
  return { ...run, origin: `http://127.0.0.1:${port}` };
}

/** Waits until `check` holds, polling; fails with `what` after `timeoutMs`. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The JSON log lines a process printed. */
export function logLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

export interface AppQueue {
  name: string;
  displayName?: string;
  description?: string;
  readOnlyMode: boolean;
  allowRetries: boolean;
  counts: Record<string, number>;
  jobs: { id: string; name: string; data: Record<string, unknown> }[];
}

/** Bull Board's own API: the queues it shows (with the jobs of `active` when given). */
export async function apiQueues(
  base: string,
  init: RequestInit = {},
  active?: { queue: string; status: string },
  jobsPerPage = 50,
): Promise<AppQueue[]> {
  const query =
    active === undefined
      ? ''
      : `?activeQueue=${encodeURIComponent(active.queue)}&status=${active.status}&page=1&jobsPerPage=${jobsPerPage}`;
  const response = await fetch(`${base}/api/queues${query}`, init);
  if (response.status !== 200) {
    throw new Error(`GET /api/queues answered ${response.status}: ${await response.text()}`);
  }
  return ((await response.json()) as { queues: AppQueue[] }).queues;
}
