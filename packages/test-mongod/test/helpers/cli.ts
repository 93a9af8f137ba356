// Run the CLI (dist/cli.js) as a separate process, as the project's stack tooling does.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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
  child: ChildProcess;
  uri: string;
  port: number;
  pid: number;
  stderr: () => string;
  exited: Promise<number | null>;
}

export async function startCli(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<CliServer> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        child.stdout?.off('data', onData);
        resolve(out.slice(0, nl));
      }
    };
    child.stdout?.on('data', onData);
    void exited.then((code) => reject(new Error(`CLI exited with ${code}: ${err}`)));
  });
  const ready = JSON.parse(line) as { uri: string; port: number; pid: number };
  return { child, ...ready, stderr: () => err, exited };
}

/** Kill by PID, and wait for the process to be gone. */
export async function killCli(
  s: CliServer,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<number | null> {
  if (s.child.exitCode === null && s.child.signalCode === null) process.kill(s.pid, signal);
  return s.exited;
}
