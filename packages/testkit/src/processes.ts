import type { ChildProcess } from 'node:child_process';
import { isAlive, spawnTracked, terminate } from '@changeq/processes';
// Vitest's own runner module (what `vitest` re-exports), which loads outside a test run too.
import { afterAll, getCurrentTest, onTestFinished } from '@vitest/runner';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A process a test started: its output so far, ways to wait for it, and ways to end it. */
export interface TestProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything written so far on stdout and stderr, in the order it arrived. */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** The process has exited. */
  readonly exited: Promise<Exit>;
  /** The process has exited and its stdout and stderr are closed: the output is complete. */
  readonly closed: Promise<Exit>;
  /**
   * The first output line matching `pattern`, printed already or to come; rejects, quoting the
   * output, when the process exits first or after `timeoutMs`.
   */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` (SIGKILL by default) by PID if it still runs, and waits until it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Sends `signal` (SIGTERM by default), SIGKILL after `graceMs`, and waits until it has exited. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

export interface StartOptions {
  /** The environment on top of PATH (nothing else of the test's environment is passed on). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** `pipe` to write to the process (child.stdin); default `ignore`. */
  stdin?: 'ignore' | 'pipe';
  /** A process group of its own (to signal the group, as a terminal's Ctrl-C does). */
  detached?: boolean;
}

const running = new Set<TestProcess>();

// Loaded by a test file (Vitest sets VITEST): after the file's last test, end what it started
// outside a test (in beforeAll or while loading). Vitest ends its worker processes without their
// exit handlers, so spawnTracked's exit hook alone would leave these running.
if (process.env.VITEST) afterAll(() => endProcesses());

/**
 * Starts `command` as a real process. It is ended by PID (SIGKILL) when the test that started it
 * finishes, passed or failed; one started outside a test, after the file's last test (a file may
 * end it sooner with `endProcesses()` or `stop()`); outside Vitest, when this process exits.
 */
export function startProcess(
  command: string,
  args: readonly string[],
  options: StartOptions = {},
): TestProcess {
  const child = spawnTracked(command, [...args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    detached: options.detached,
    outlive: false,
  });
  if (child.pid === undefined) throw new Error(`could not start ${command} ${args.join(' ')}`);
  const pid = child.pid;
  let output = '';
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
    output += chunk.toString('utf8');
    for (const check of [...watchers]) check();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    output += chunk.toString('utf8');
    for (const check of [...watchers]) check();
  });
  let hasExited = false;
  const exited = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => {
      hasExited = true;
      running.delete(handle);
      for (const check of [...watchers]) check();
      resolve({ code, signal });
    }),
  );
  const closed = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const handle: TestProcess = {
    child,
    pid,
    output: () => output,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    closed,
    waitForLine(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(
            new Error(
              `${command}: no line matching ${pattern} within ${timeoutMs} ms; output:\n${output.slice(-3000)}`,
            ),
          );
        }, timeoutMs);
        function check() {
          const line = output.split('\n').find((l) => pattern.test(l));
          if (line === undefined && !hasExited) return;
          watchers.delete(check);
          clearTimeout(timer);
          if (line !== undefined) resolve(line);
          else
            reject(
              new Error(
                `${command} exited before printing a line matching ${pattern}; output:\n${output.slice(-3000)}`,
              ),
            );
        }
        watchers.add(check);
        check();
      });
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      // Not once it has exited: its PID may belong to another process by now.
      if (!hasExited && isAlive(pid)) process.kill(pid, signal);
      await exited;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000) {
      if (!hasExited) await terminate(pid, signal, graceMs);
      await exited;
    },
  };
  running.add(handle);
  if (getCurrentTest() !== undefined) onTestFinished(() => handle.kill());
  return handle;
}

/** `node <script> ...args` with the Node.js that runs the tests. */
export function startNode(
  script: string,
  args: readonly string[] = [],
  options: StartOptions = {},
): TestProcess {
  return startProcess(process.execPath, [script, ...args], options);
}

/** Ends (SIGKILL, by PID) the given processes, or every one the kit started that still runs. */
export async function endProcesses(list: readonly TestProcess[] = [...running]): Promise<void> {
  await Promise.all(list.map((p) => p.kill()));
}
