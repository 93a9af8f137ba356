/** Real processes for the CLI's tests: the CLI itself, the ingest, workers; and ways to look. */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { MongoClient, Timestamp } from 'mongodb';
import { decodeEvent, type EventJobData } from '@changeq/shared';
import { appMain, startApp, startProcess } from '@changeq/testkit';

const HERE = dirname(fileURLToPath(import.meta.url));
export const CLI = appMain('cli');
/** Succeeds, except for inserts of `{ fail: true }` documents while HEAL_FILE does not exist. */
export const HANDLERS = resolve(HERE, 'fixtures/handlers.mjs');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `changeq <args>` to the end, stdin not a terminal. */
export async function cli(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<CliResult> {
  const run = startApp('cli', args, env);
  const { code } = await run.closed;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/** Runs the CLI on a pseudo-terminal (util-linux `script`), typing `input` on it. */
export async function cliOnTerminal(
  args: string[],
  env: Record<string, string | undefined>,
  input: string,
): Promise<CliResult> {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`);
  const run = startProcess('script', ['-qec', command.join(' '), '/dev/null'], {
    env: { LOG_FORMAT: 'json', ...env },
    stdin: 'pipe',
  });
  if (input !== '') {
    // Typed once the question is on the screen; a CLI that never asks just runs to its end.
    void run.waitForLine(/\[y\/N\]/, 60_000).then(
      () => run.child.stdin?.write(input),
      () => undefined,
    );
  }
  const { code } = await run.closed;
  return { code, stdout: run.stdout(), stderr: '' };
}

/** The one line a user error prints: `changeq: <problem>. Fix: <fix>`. */
export function userErrorLine(result: CliResult): string {
  const lines = result.stderr.trim().split('\n');
  if (result.code !== 2 || lines.length !== 1 || !/^changeq: .+ Fix: .+/.test(lines[0]!)) {
    throw new Error(`expected one user-error line and exit 2, got ${JSON.stringify(result)}`);
  }
  return lines[0]!;
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
