import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Every child this process starts is remembered by PID and killed when this process exits, so a
 * crashed test run or an interrupted demo never leaves servers behind.
 */
const children = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of children) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

export interface TrackedSpawnOptions extends SpawnOptions {
  /**
   * Keep the child running after this process exits (not killed by the exit hook). Default: the
   * value of `detached`; a detached child that should still be cleaned up sets it to false.
   */
  outlive?: boolean;
}

export function spawnTracked(
  command: string,
  args: string[],
  { outlive, ...options }: TrackedSpawnOptions,
): ChildProcess {
  installExitHook();
  const child = spawn(command, args, options);
  if (child.pid !== undefined) {
    const pid = child.pid;
    if (!(outlive ?? options.detached ?? false)) children.add(pid);
    child.once('exit', () => children.delete(pid));
  }
  return child;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends `signal`, waits for the process to disappear, and escalates to SIGKILL after `graceMs`. */
export async function terminate(
  pid: number,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 10_000,
): Promise<void> {
  if (!isAlive(pid)) return;
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        return;
      }
    }
    await sleep(20);
  }
}

/** Waits until a child process has exited (and been reaped). */
export function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * `count` free TCP ports on loopback, all different: each is held until all are chosen, so the
 * kernel cannot hand one out twice. Separate `freePort` calls can return a port again when the
 * process it was meant for has not bound it yet (the demo once gave its ingest and a worker the
 * same port).
 */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i += 1) {
      const server = createServer();
      server.unref();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => resolve());
      });
    }
    return servers.map((server) => {
      const address = server.address();
      return typeof address === 'object' && address ? address.port : 0;
    });
  } finally {
    await Promise.all(
      servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
  }
}

/** A free TCP port on loopback, chosen by the kernel. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await freePorts(1, host);
  return port!;
}
