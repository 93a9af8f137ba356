import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { freePort, spawnTracked, terminate } from '@changeq/processes';
import { restartable } from './restartable.js';
import { waitForLine } from '@changeq/processes';

export interface MongoServerProcessOptions {
  /** Default: a free port chosen by the kernel, kept across restarts. */
  port?: number;
  /** Where documents and change history live. Default: a fresh temporary folder, removed on stop(). */
  dataDir?: string;
  /** The change-history window ("oplog size"), by event count and age. */
  historyMaxEvents?: number;
  historyMaxAgeSeconds?: number;
  /** Periodic no-op after this many ms without writes (default 10,000 like MongoDB; 0: off). */
  noopIntervalMs?: number;
  /**
   * Require authentication (SCRAM-SHA-256, like mongod --auth) with this root user in `admin`.
   * The URI then carries the credentials (percent-encoded) and authSource=admin, so clients
   * built from it authenticate; the password reaches the server through its environment, not
   * its command line.
   */
  auth?: { user: string; password: string };
  /**
   * Present the server as the mongos of a sharded cluster (test-mongod --mongos): the URI names
   * no replica set and shardCollection gives collections a shard key.
   */
  mongos?: boolean;
  detached?: boolean;
  /**
   * Start it in a process group of its own: a Ctrl-C in a terminal signals the whole foreground
   * group, and the demo must stop its components (which still need this server) before the
   * server. It is still stopped when this process exits.
   */
  ownProcessGroup?: boolean;
}

export interface RunningMongo {
  readonly uri: string;
  readonly port: number;
  readonly dataDir: string;
  readonly pid: number;
  /** True when MONGODB_URI pointed at an existing server: it cannot be stopped or restarted. */
  readonly external: boolean;
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  restart(): Promise<void>;
}

/** The CLI of @changeq/test-mongod, next to its main module. */
export function testMongodCli(): string {
  // createRequire rather than import.meta.resolve: test runners that transform this module
  // (vitest inlines workspace packages) do not provide the latter.
  const main = createRequire(import.meta.url).resolve('@changeq/test-mongod');
  return join(dirname(main), 'cli.js');
}

/** How the test server's CLI takes a startup user (name:password) out of sight of `ps`. */
const USER_ENV = 'CHANGEQ_TEST_MONGOD_USER';

/** `mongodb://user:pass@host/?…&authSource=admin`, both parts percent-encoded. */
function withCredentials(
  uri: string,
  auth: { user: string; password: string } | undefined,
): string {
  if (!auth) return uri;
  const at = uri.indexOf('//') + 2;
  const credentials = `${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.password)}@`;
  const withUser = `${uri.slice(0, at)}${credentials}${uri.slice(at)}`;
  return `${withUser}${withUser.includes('?') ? '&' : '?'}authSource=admin`;
}

/**
 * Starts the project's MongoDB-compatible server (@changeq/test-mongod) as its own process, so
 * tests can kill -9 it and restart it on the same data folder mid-stream.
 */
export async function startMongo(options: MongoServerProcessOptions = {}): Promise<RunningMongo> {
  const port = options.port ?? (await freePort());
  const ownsDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'changeq-mongo-'));
  mkdirSync(dataDir, { recursive: true });
  const args = [
    testMongodCli(),
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--dbpath',
    dataDir,
  ];
  if (options.historyMaxEvents !== undefined)
    args.push('--history-max-events', String(options.historyMaxEvents));
  if (options.historyMaxAgeSeconds !== undefined) {
    args.push('--history-max-age-seconds', String(options.historyMaxAgeSeconds));
  }
  if (options.noopIntervalMs !== undefined)
    args.push('--noop-interval-ms', String(options.noopIntervalMs));
  if (options.mongos) args.push('--mongos');
  const env = { ...process.env };
  delete env[USER_ENV];
  if (options.auth) {
    const { user, password } = options.auth;
    if (!user || user.includes(':') || !password) {
      throw new Error('startMongo: auth needs a user (without ":") and a non-empty password');
    }
    args.push('--auth');
    env[USER_ENV] = `${user}:${password}`;
  }
  let uri = '';

  const launch = async () => {
    const logFd = openSync(join(dataDir, 'mongod.log'), 'a');
    const child = spawnTracked(process.execPath, args, {
      stdio: ['ignore', 'pipe', logFd],
      env,
      detached: (options.detached ?? false) || (options.ownProcessGroup ?? false),
      outlive: options.detached ?? false,
    });
    closeSync(logFd); // the child holds its own copy
    if (child.pid === undefined) throw new Error('could not start test-mongod');
    try {
      const line = await waitForLine(child, /^\{.*"uri"/, 60_000, `test-mongod on port ${port}`);
      uri = withCredentials((JSON.parse(line) as { uri: string }).uri, options.auth);
    } catch (error) {
      await terminate(child.pid, 'SIGKILL');
      throw new Error(`${(error as Error).message}\nsee ${join(dataDir, 'mongod.log')}`);
    }
    child.stdout?.resume();
    if (options.detached) {
      child.stdout?.destroy();
      child.unref();
    }
    return child;
  };

  const server = await restartable(launch, () => {
    if (ownsDir) rmSync(dataDir, { recursive: true, force: true });
  });
  return {
    get uri() {
      return uri;
    },
    port,
    dataDir,
    get pid() {
      return server.pid;
    },
    external: false,
    stop: () => server.stop(),
    kill: (signal) => server.kill(signal),
    restart: () => server.restart(),
  };
}

/** A server given by MONGODB_URI (a real MongoDB): used as is, never stopped. */
export function externalMongo(uri: string): RunningMongo {
  const unsupported = async () => {
    throw new Error('cannot restart or kill the external MongoDB given by MONGODB_URI');
  };
  return {
    uri,
    port: 0,
    dataDir: '',
    pid: 0,
    external: true,
    stop: async () => {},
    kill: unsupported,
    restart: unsupported,
  };
}
