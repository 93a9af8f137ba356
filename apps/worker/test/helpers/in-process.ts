/** What the in-process worker tests (startWorker against real Redis) share. */
import { Writable } from 'node:stream';
import { afterAll, beforeAll } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { createLogger, type Logger, type WorkerSettings } from '@changeq/shared';

/** A Redis server of the test file's own and a client on it, from its first test to its last. */
export function redisForFile(): { readonly url: string; readonly redis: Redis } {
  let server: RunningRedis | undefined;
  let client: Redis | undefined;
  beforeAll(async () => {
    server = await startRedis();
    client = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await client?.quit();
    await server?.stop();
  });
  return {
    get url() {
      return server!.url;
    },
    get redis() {
      return client!;
    },
  };
}

/** A logger at info whose JSON lines the test reads. */
export function capturedLog(): { lines: string[]; log: Logger } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, log: createLogger({ name: 'test', level: 'info', destination, pretty: false }) };
}

/** Handler settings for a test: quick retries, a generous time limit, dead letters that block. */
export function testSettings(overrides: Partial<WorkerSettings> = {}): WorkerSettings {
  return {
    concurrency: 2,
    attempts: 1,
    backoffMs: 10,
    maxBackoffMs: 10,
    timeoutMs: 20_000,
    deadLetter: 'block',
    ...overrides,
  };
}
