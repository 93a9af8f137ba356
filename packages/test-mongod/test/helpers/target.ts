// Where conformance tests run: our own server by default, or the real MongoDB at MONGODB_URI.
import { MongoClient } from 'mongodb';
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
