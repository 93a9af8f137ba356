// Run the CLI (dist/cli.js) as a separate process, as the project's stack tooling does.
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNode, type TestProcess } from '@changeq/testkit';

const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(pkgDir, 'dist', 'cli.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** Build dist/ when it is missing or older than src/ (tests may run before `npm run build`). */
export function ensureBuilt(): void {
  const stale =
    !fs.existsSync(CLI) || fs.statSync(CLI).mtimeMs < newestMtime(path.join(pkgDir, 'src'));
  if (stale) {
    execFileSync(
      process.execPath,
      [path.join(pkgDir, '../../node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
      {
        cwd: pkgDir,
        stdio: 'inherit',
      },
    );
  }
}

export interface CliServer {
  process: TestProcess;
  child: ChildProcess;
  uri: string;
  port: number;
  pid: number;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts the CLI and resolves with what its ready line says; rejects if it exits first. */
export async function startCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliServer> {
  const run = startNode(CLI, args, { env });
  const exited = run.exited.then(({ code }) => code);
  const line = await run.waitForLine(/^\{"uri":/, 30_000).catch(async (error: unknown) => {
    if (run.child.exitCode === null && run.child.signalCode === null) throw error;
    throw new Error(`CLI exited with ${await exited}: ${run.stderr()}`);
  });
  const ready = JSON.parse(line) as { uri: string; port: number; pid: number };
  return { process: run, child: run.child, ...ready, stderr: run.stderr, exited };
}

/** Kill by PID, and wait for the process to be gone. */
export async function killCli(
  s: CliServer,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<number | null> {
  await s.process.kill(signal);
  return s.exited;
}
