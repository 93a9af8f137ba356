import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApp, type TestProcess } from '@changeq/testkit';

export const APP_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface BoardRun extends TestProcess {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  origin: string;
}

/** Starts the built board and waits until it listens (BOARD_PORT 0 lets the kernel pick). */
export async function startBoardProcess(env: NodeJS.ProcessEnv): Promise<BoardRun> {
  const run = startApp('board', [], { BOARD_PORT: '0', ...env }, { cwd: APP_ROOT });
  const line = await run.waitForLine(/Bull Board listening on/);
  const port = /"url":"https?:\/\/[^"]*?:(\d+)\//.exec(line)?.[1];
  if (port === undefined) throw new Error(`no port in ${line}`);
  return { ...run, origin: `http://127.0.0.1:${port}` };
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
