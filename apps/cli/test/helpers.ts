/** Real processes for the CLI's tests: the CLI itself, the ingest, workers; and ways to look. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { MongoClient, Timestamp } from 'mongodb';
import { decodeEvent, type EventJobData } from '@changeq/shared';
import { isAlive, spawnTracked, terminate } from '@changeq/stack';

const HERE = dirname(fileURLToPath(import.meta.url));
export const CLI = resolve(HERE, '../dist/main.js');
export const INGEST = resolve(HERE, '../../ingest/dist/main.js');
export const WORKER = resolve(HERE, '../../worker/dist/main.js');
/** Succeeds, except for inserts of `{ fail: true }` documents while HEAL_FILE does not exist. */
export const HANDLERS = resolve(HERE, 'fixtures/handlers.mjs');

export function workersFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'changeq-cli-')), 'workers.toml');
  writeFileSync(file, text);
  return file;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `changeq <args>` to the end, stdin not a terminal. */
export function cli(args: string[], env: Record<string, string | undefined>): Promise<CliResult> {
  const child = spawnTracked(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  return new Promise((res) => child.once('close', (code) => res({ code, stdout, stderr })));
}

/** Runs the CLI on a pseudo-terminal (util-linux `script`), typing `input` on it. */
export function cliOnTerminal(
  args: string[],
  env: Record<string, string | undefined>,
  input: string,
): Promise<CliResult> {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`);
  const child = spawnTracked('script', ['-qec', command.join(' '), '/dev/null'], {
    env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
    if (/\[y\/N\]/.test(stdout) && input !== '') {
      child.stdin?.write(input);
      input = '';
    }
  });
  return new Promise((res) => child.once('close', (code) => res({ code, stdout, stderr: '' })));
}

/** The one line a user error prints: `changeq: <problem>. Fix: <fix>`. */
export function userErrorLine(result: CliResult): string {
  const lines = result.stderr.trim().split('\n');
  if (result.code !== 2 || lines.length !== 1 || !/^changeq: .+ Fix: .+/.test(lines[0]!)) {
    throw new Error(`expected one user-error line and exit 2, got ${JSON.stringify(result)}`);
  }
  return lines[0]!;
}

export interface AppProcess {
  child: ChildProcess;
  pid: number;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function startApp(
  script: string,
  args: string[],
  env: Record<string, string | undefined>,
): AppProcess {
  const child = spawnTracked(process.execPath, [script, ...args], {
    env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => res({ code, signal })),
  );
  return {
    child,
    pid: child.pid!,
    output: () => output,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (isAlive(child.pid!)) await terminate(child.pid!, signal, 10_000);
      await exited;
    },
  };
}

/** Stops every process in the list by its PID (SIGKILL), and empties the list. */
export async function killAll(list: AppProcess[]): Promise<void> {
  await Promise.all(
    list.splice(0).map(async (p) => {
      if (isAlive(p.pid)) await terminate(p.pid, 'SIGKILL', 5_000);
      await p.exited;
    }),
  );
}

export async function waitFor(
  check: () => Promise<boolean> | boolean,
  what: string | (() => string | Promise<string>),
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) {
      const detail = typeof what === 'string' ? what : await what();
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${detail}`);
    }
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** A scrape of a /metrics endpoint: the value of a sample, or the sum over matching samples. */
export class Scrape {
  constructor(readonly text: string) {}

  static async of(url: string): Promise<Scrape> {
    const res = await fetch(`${url}/metrics`);
    if (res.status !== 200) throw new Error(`${url}/metrics answered ${res.status}`);
    return new Scrape(await res.text());
  }

  samples(name: string, labels: Record<string, string> = {}): number[] {
    const values: number[] = [];
    for (const line of this.text.split('\n')) {
      if (line.startsWith('#')) continue;
      const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (.+)$/.exec(line);
      if (!match || match[1] !== name) continue;
      const have = Object.fromEntries(
        [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
      );
      // A label value may hold `*` wildcards: `*` is any value, `*.dead` the dead-letter queues.
      const wanted = Object.entries(labels).every(([key, value]) =>
        new RegExp(
          `^${value
            .split('*')
            .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
            .join('.*')}$`,
        ).test(have[key] ?? ''),
      );
      if (wanted) values.push(Number(match[3]));
    }
    return values;
  }

  sum(name: string, labels: Record<string, string> = {}): number {
    return this.samples(name, labels).reduce((a, b) => a + b, 0);
  }

  value(name: string, labels: Record<string, string> = {}): number {
    const values = this.samples(name, labels);
    if (values.length !== 1) {
      throw new Error(
        `expected one sample of ${name} ${JSON.stringify(labels)}, got ${values.length}`,
      );
    }
    return values[0]!;
  }
}

export async function readyz(
  url: string,
): Promise<{ status: number; body: { missing: string[] } }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as { missing: string[] } };
}

export async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/healthz`)).status === 200;
  } catch {
    return false;
  }
}

export interface QueuedJob {
  queue: string;
  jobId: string;
  data: EventJobData;
  event: {
    operationType: string;
    _id: unknown;
    documentKey?: { _id: unknown };
    fullDocument?: Record<string, unknown>;
  };
}

/** Every job of the queues' wait lists, oldest first per queue. */
export async function waitingJobs(
  redisUrl: string,
  prefix: string,
  queues: readonly string[],
): Promise<QueuedJob[]> {
  const redis = new Redis(redisUrl);
  try {
    const all: QueuedJob[] = [];
    for (const name of queues) {
      const queue = new Queue(name, { connection: redis, prefix });
      const ids = (await redis.lrange(`${prefix}:${name}:wait`, 0, -1)).reverse();
      for (const id of ids) {
        const job = await queue.getJob(id);
        if (!job) continue;
        const data = job.data as EventJobData;
        all.push({ queue: name, jobId: id, data, event: decodeEvent(data) as QueuedJob['event'] });
      }
      await queue.close();
    }
    return all;
  } finally {
    redis.disconnect();
  }
}

/** The cluster time of the last operation (what a `hello` reports). */
export async function operationTime(mongo: MongoClient): Promise<Timestamp> {
  const reply = await mongo.db('admin').command({ hello: 1 });
  return (reply.operationTime ?? reply.$clusterTime?.clusterTime) as Timestamp;
}
