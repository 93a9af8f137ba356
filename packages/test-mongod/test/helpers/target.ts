// Where conformance tests run: our own server by default, or the real MongoDB at MONGODB_URI.
import { Long, MongoClient } from 'mongodb';
import type { MongoClientOptions } from 'mongodb';
import { startMongoServer } from '../../src/index.js';
import type { MongoServerOptions, RunningMongoServer } from '../../src/index.js';

export interface Target {
  uri: string;
  external: boolean;
  server?: RunningMongoServer;
  /** Open a client; every client is closed by stop(). */
  client(options?: MongoClientOptions): Promise<MongoClient>;
  stop(): Promise<void>;
}

export async function startTarget(options: MongoServerOptions = {}): Promise<Target> {
  const externalUri = process.env.MONGODB_URI;
  const server = externalUri ? undefined : await startMongoServer(options);
  const uri = externalUri ?? (server as RunningMongoServer).uri;
  const clients: MongoClient[] = [];
  return {
    uri,
    external: externalUri !== undefined,
    server,
    async client(opts = {}) {
      const c = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000, ...opts });
      clients.push(c);
      await c.connect();
      return c;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.close(true)));
      await server?.stop();
    },
  };
}

let counter = 0;
/** A database name unique to this test run, so suites never see each other's data. */
export function uniqueDb(prefix: string): string {
  counter++;
  return `cq_${prefix}_${process.pid}_${Date.now().toString(36)}_${counter}`;
}

/**
 * Whether fail points can be used. Against our own server they always can; against a real
 * server only when it runs with enableTestCommands=1.
 */
export async function failPointsAvailable(target: Target, client: MongoClient): Promise<boolean> {
  if (!target.external) return true;
  try {
    await client.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
    return true;
  } catch {
    return false;
  }
}

/**
 * The server's version as [major, minor, patch], so a test of behaviour that differs between the
 * MongoDB versions the hosted workflow runs (6.0, 7.0, 8.0) can ask which one it talks to.
 */
export async function serverVersion(client: MongoClient): Promise<[number, number, number]> {
  const info = await client.db('admin').command({ buildInfo: 1 });
  const [major = 0, minor = 0, patch = 0] = String(info.version)
    .split('.')
    .map((p) => Number.parseInt(p, 10));
  return [major, minor, patch];
}

/** Whether `version` is at least `min`. */
export function atLeast(version: [number, number, number], min: [number, number, number]): boolean {
  for (let i = 0; i < 3; i++) {
    const a = version[i] as number;
    const b = min[i] as number;
    if (a !== b) return a > b;
  }
  return true;
}

/**
 * A reply's cursor id as a Long. The driver turns a Long that fits in 53 bits into a number,
 * which a getMore would send back as the wrong type (cursor ids are random 64-bit numbers, so
 * now and then one does fit).
 */
export function cursorId(reply: { cursor?: unknown }): Long {
  return Long.fromValue((reply.cursor as { id: Long | number }).id);
}
