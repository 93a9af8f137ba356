// Servers, clients, CLI processes and data folders an integration test file starts, stopped and
// removed after each test (folders after the file), so no test leaves a process or a port behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { MongoClient } from 'mongodb';
import { startMongoServer } from '../../src/index.js';
import type { MongoServerOptions, RunningMongoServer } from '../../src/index.js';
import { ensureBuilt, killCli } from './cli.js';
import type { CliServer } from './cli.js';

export interface TestResources {
  /** Starts an in-process server and a client connected to it. */
  start(options: MongoServerOptions): Promise<{ s: RunningMongoServer; c: MongoClient }>;
  connect(uri: string): Promise<MongoClient>;
  /** A fresh data folder. */
  tmpDir(): string;
  /** Stops this in-process server after the test. */
  server(s: RunningMongoServer): RunningMongoServer;
  /** Kills this CLI process after the test. */
  cli(s: CliServer): CliServer;
}

/** Registers the file's hooks; call once at the top level of a test file. */
export function useTestResources(dirPrefix = 'cq-mongod-'): TestResources {
  const servers: RunningMongoServer[] = [];
  const clients: MongoClient[] = [];
  const clis: CliServer[] = [];
  const dirs: string[] = [];

  beforeAll(() => ensureBuilt());
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close(true)));
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    for (const s of clis.splice(0)) await killCli(s);
  });
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  const connect = async (uri: string): Promise<MongoClient> => {
    const c = new MongoClient(uri, { serverSelectionTimeoutMS: 20_000 });
    clients.push(c);
    await c.connect();
    return c;
  };
  return {
    async start(options) {
      const s = await startMongoServer(options);
      servers.push(s);
      return { s, c: await connect(s.uri) };
    },
    connect,
    tmpDir() {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), dirPrefix));
      dirs.push(d);
      return d;
    },
    server(s) {
      servers.push(s);
      return s;
    },
    cli(s) {
      clis.push(s);
      return s;
    },
  };
}
