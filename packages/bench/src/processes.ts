/**
 * The processes a figure starts: the changeq apps (their built entry points, as users run them)
 * and the bench's own programs (the alternatives, bare Workers). Each is ended by its PID.
 */
import { fileURLToPath } from 'node:url';
import { spawnTracked, terminate } from '@changeq/processes';
import { appMain } from '@changeq/testkit';

export interface Started {
  pid: number;
  /** Throws when the process has exited already (it should run until stopped). */
  check(): void;
  stop(): Promise<void>;
}

function start(
  script: string,
  args: string[],
  env: Record<string, string>,
  label: string,
): Started {
  const child = spawnTracked(process.execPath, [script, ...args], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env },
    // stderr shows through: a process that fails says why.
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${label}`);
  const pid = child.pid;
  return {
    pid,
    check() {
      if (child.exitCode !== null)
        throw new Error(`${label} exited early with code ${child.exitCode}`);
    },
    stop: () => terminate(pid, 'SIGTERM', 5000),
  };
}

/** One of the bench's programs (dist/<name>.js beside this module). */
export function startProgram(name: string, env: Record<string, string>): Started {
  return start(fileURLToPath(new URL(`./${name}.js`, import.meta.url)), [], env, name);
}

export function startApp(app: 'ingest' | 'worker', args: string[], env: Record<string, string>) {
  return start(appMain(app), args, env, `changeq ${app}`);
}

export const changeqHandlers = fileURLToPath(new URL('./changeq-handlers.js', import.meta.url));
