import type { ChildProcess } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnTracked, terminate, isAlive } from '@changeq/stack';

export const APP_DIR = resolve(import.meta.dirname, '../..');
export const MAIN = join(APP_DIR, 'dist/main.js');
export const RECORDING_HANDLERS = join(APP_DIR, 'test/fixtures/recording-handlers.mjs');

export function writeWorkersFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'changeq-worker-test-'));
  const file = join(dir, 'workers.toml');
  writeFileSync(file, text);
  return file;
}

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  /** Everything written so far on stdout and stderr. */
  output(): string;
  /** Resolves with the first output line matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `node dist/main.js` with the given flags and environment (tracked: killed on exit). */
export function startWorkerProcess(args: string[], env: NodeJS.ProcessEnv): WorkerProcess {
  const child = spawnTracked(process.execPath, [MAIN, ...args], {
    cwd: APP_DIR,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const watchers: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const onData = (chunk: Buffer) => {
    text += chunk.toString();
    for (const watcher of [...watchers]) {
      const line = text.split('\n').find((l) => watcher.pattern.test(l));
      if (line !== undefined) {
        watchers.splice(watchers.indexOf(watcher), 1);
        watcher.resolve(line);
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => res({ code, signal })),
  );
  if (child.pid === undefined) throw new Error('could not start the worker process');
  return {
    child,
    pid: child.pid,
    output: () => text,
    exited,
    waitFor(pattern, timeoutMs = 20_000) {
      const line = text.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) return Promise.resolve(line);
      return new Promise((res, rej) => {
        const timer = setTimeout(() => {
          rej(
            new Error(
              `no line matching ${pattern} within ${timeoutMs} ms; output:\n${text.slice(-3000)}`,
            ),
          );
        }, timeoutMs);
        watchers.push({
          pattern,
          resolve: (l) => {
            clearTimeout(timer);
            res(l);
          },
        });
        void exited.then(() => {
          clearTimeout(timer);
          rej(new Error(`worker exited before printing ${pattern}; output:\n${text.slice(-3000)}`));
        });
      });
    },
  };
}

/** Kills every process in `list` that is still running (SIGKILL), by PID. */
export async function killAll(list: WorkerProcess[]): Promise<void> {
  await Promise.all(
    list.splice(0).map(async (p) => {
      if (isAlive(p.pid)) await terminate(p.pid, 'SIGKILL', 5_000);
    }),
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true, or throws after `timeoutMs` with `describe()`. */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs: number,
  describe: () => Promise<string> | string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms: ${await describe()}`);
}
