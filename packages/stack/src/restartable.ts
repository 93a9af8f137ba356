import type { ChildProcess } from 'node:child_process';
import { isAlive, terminate, waitForExit } from '@changeq/processes';

/** A server process the tests can stop, kill and start again in place (same port, same data). */
export interface Restartable {
  readonly pid: number;
  /** Graceful stop (SIGTERM, SIGKILL after a grace period), then `cleanup`. */
  stop(): Promise<void>;
  /** Kills it with a signal and waits for it to go, without cleaning up (for fault tests). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again after stop() or kill() (stopping it first if it still runs). */
  restart(): Promise<void>;
}

/** Runs `launch` now and on every restart; `launch` resolves once the server is ready. */
export async function restartable(
  launch: () => Promise<ChildProcess>,
  cleanup: () => void,
): Promise<Restartable> {
  let child = await launch();
  const pidOf = () => child.pid ?? 0;
  return {
    get pid() {
      return pidOf();
    },
    async stop() {
      await terminate(pidOf(), 'SIGTERM');
      await waitForExit(child);
      cleanup();
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (isAlive(pidOf())) process.kill(pidOf(), signal);
      await waitForExit(child);
    },
    async restart() {
      if (isAlive(pidOf())) {
        await terminate(pidOf(), 'SIGTERM');
        await waitForExit(child);
      }
      child = await launch();
    },
  };
}
