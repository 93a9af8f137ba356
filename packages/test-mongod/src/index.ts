// @changeq/test-mongod: a MongoDB-compatible server for tests, benchmarks and the offline demo.
import type { StartupUser } from './auth/users.js';
import { MongoServer } from './server.js';

export interface MongoServerOptions {
  /** Interface to listen on. Default '127.0.0.1'. */
  host?: string;
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Folder for the durable log; undefined keeps everything in memory. */
  dataDir?: string;
  /** Replica set name reported by hello. Default 'rs0'. */
  replSetName?: string;
  /**
   * Present itself as the mongos of a sharded cluster: hello answers `msg: "isdbgrid"` (the
   * driver's topology becomes Sharded), `uri` names no replica set, and shardCollection gives a
   * collection a shard key that its change events' documentKey carries beside `_id`.
   */
  mongos?: boolean;
  /** The change history ("oplog window") kept for resuming change streams. */
  history?: { maxEvents?: number; maxAgeSeconds?: number };
  /**
   * After this many milliseconds without a write, write a periodic no-op (an internal history
   * entry, never a change event) so the cluster time and idle change streams'
   * postBatchResumeToken keep advancing, like MongoDB's periodicNoopIntervalSecs. Default
   * 10,000 (MongoDB's 10 s); 0 disables.
   */
  noopIntervalMs?: number;
  /** Receives log lines; default silent. */
  log?: (line: string) => void;
  /**
   * Access control, like `mongod --auth`: every command except the handshake (hello, ping,
   * saslStart/saslContinue, …) needs a connection authenticated with SCRAM-SHA-256, else it fails
   * with 13 Unauthorized. `users` are created at startup in `admin` with the root role (kept
   * from an earlier run on the same dataDir if the password is the same); more can be added with
   * createUser. Without this option, users can still be created and used but are not required.
   */
  auth?: { users?: { user: string; password: string }[] };
}

export interface RunningMongoServer {
  uri: string;
  host: string;
  port: number;
  stop(): Promise<void>;
}

export const DEFAULT_HISTORY = { maxEvents: 1_000_000, maxAgeSeconds: 24 * 60 * 60 };

/** MongoDB's default periodicNoopIntervalSecs (10 s). */
export const DEFAULT_NOOP_INTERVAL_MS = 10_000;

/** Internal knobs for this package's own tests and CLI; not part of the public API. */
export interface InternalServerOptions {
  compactBytes?: number;
  argv?: string[];
}

function checkedUsers(users: { user: string; password: string }[]): StartupUser[] {
  for (const u of users) {
    if (
      typeof u.user !== 'string' ||
      u.user === '' ||
      typeof u.password !== 'string' ||
      u.password === ''
    ) {
      throw new RangeError('auth.users entries need a non-empty user and password');
    }
  }
  return users.map((u) => ({ user: u.user, password: u.password }));
}

export async function startMongoServer(
  options: MongoServerOptions = {},
  internal: InternalServerOptions = {},
): Promise<RunningMongoServer> {
  const replSetName = options.replSetName ?? 'rs0';
  const maxEvents = options.history?.maxEvents ?? DEFAULT_HISTORY.maxEvents;
  const maxAgeSeconds = options.history?.maxAgeSeconds ?? DEFAULT_HISTORY.maxAgeSeconds;
  if (!(maxEvents >= 1) || !(maxAgeSeconds > 0)) {
    throw new RangeError('history.maxEvents must be >= 1 and history.maxAgeSeconds > 0');
  }
  const noopIntervalMs = options.noopIntervalMs ?? DEFAULT_NOOP_INTERVAL_MS;
  if (!Number.isInteger(noopIntervalMs) || noopIntervalMs < 0 || noopIntervalMs > 2 ** 31 - 1) {
    throw new RangeError('noopIntervalMs must be an integer from 0 (no no-ops) to 2147483647');
  }
  const server = await MongoServer.start({
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    replSetName,
    mongos: options.mongos ?? false,
    noopIntervalMs,
    log: options.log ?? (() => undefined),
    argv: internal.argv,
    auth: options.auth && { required: true, users: checkedUsers(options.auth.users ?? []) },
    engine: {
      dataDir: options.dataDir,
      history: { maxEvents, maxAgeSeconds },
      compactBytes: internal.compactBytes,
    },
  });
  const host = server.state.host;
  const port = server.port;
  return {
    uri: options.mongos
      ? `mongodb://${host}:${port}/`
      : `mongodb://${host}:${port}/?replicaSet=${encodeURIComponent(replSetName)}`,
    host,
    port,
    stop: () => server.stop(),
  };
}
