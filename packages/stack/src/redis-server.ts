import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { freePort, spawnTracked, terminate } from '@changeq/processes';
import { restartable } from './restartable.js';
import { pingRedis } from './resp-ping.js';
import { makeTestCertificates, type TestCertificates } from './test-certificates.js';

/** An ACL user besides `default`: `user <name> on ><password> <rules>` in the server's config. */
export interface RedisAclUser {
  name: string;
  password: string;
  /** ACL rules, e.g. `~changeq:* -@all +get +set` (see changeq's REDIS_ACL_RULES). */
  rules: string;
}

export interface RedisServerOptions {
  /** Default: a free port chosen by the kernel. */
  port?: number;
  /** Where the AOF lives. Default: a fresh temporary folder, removed on stop(). */
  dataDir?: string;
  /**
   * `everysec` (Redis' default, what production uses) or `always` (every write is on disk
   * before the reply, so even a kill -9 of Redis loses nothing: the fault tests use it).
   */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** Keep running after this process exits (the `stack up` command). */
  detached?: boolean;
  /**
   * Start it in a process group of its own: a Ctrl-C in a terminal signals the whole foreground
   * group, and the demo must stop its components (which still need this server) before the
   * server. It is still stopped when this process exits.
   */
  ownProcessGroup?: boolean;
  /**
   * The `default` user's password (requirepass). It goes into a config file of the server's
   * folder (mode 600), never on its command line where `ps` shows it; `url` carries it.
   */
  password?: string;
  /** More users, such as one holding only the commands changeq needs. */
  users?: readonly RedisAclUser[];
  /**
   * Serve TLS only (`--port 0 --tls-port`), with a CA and certificates made for this server by
   * openssl; `clientCertificates` makes the server require a client certificate signed by it.
   */
  tls?: { clientCertificates?: boolean };
  /** More redis-server arguments, e.g. `--cluster-enabled yes` for a node of a Redis Cluster. */
  extraArgs?: readonly string[];
}

export interface RunningRedis {
  /** rediss:// when it serves TLS; with the default user's password when it has one. */
  readonly url: string;
  /** The URL for an ACL user (percent-encoded), or for the default user without a password. */
  urlFor(user?: { name: string; password: string }): string;
  /** The certificates of a TLS server, and the environment that makes changeq trust them. */
  readonly tls: (TestCertificates & { env: Record<string, string> }) | undefined;
  readonly port: number;
  readonly dataDir: string;
  readonly pid: number;
  /** Graceful stop (SHUTDOWN via SIGTERM: the AOF is flushed). */
  stop(): Promise<void>;
  /** Kills the server with a signal, without cleaning up its folder (for fault tests). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and folder after stop() or kill(). */
  restart(): Promise<void>;
}

export function redisServerBinary(): string {
  const fromEnv = process.env.REDIS_SERVER_BIN;
  if (fromEnv) return fromEnv;
  for (const candidate of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) {
    if (existsSync(candidate)) return candidate;
  }
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status === 0) return 'redis-server';
  throw new Error(
    'redis-server is not installed. Fix: run `node scripts/bootstrap.mjs` (npm test and npm run demo do it), or install Redis and set REDIS_SERVER_BIN.',
  );
}

/**
 * Starts Debian's redis-server on loopback with the settings BullMQ's production guide asks
 * for: AOF persistence and `maxmemory-policy noeviction` (an evicted job key is a lost job).
 */
export async function startRedis(options: RedisServerOptions = {}): Promise<RunningRedis> {
  const port = options.port ?? (await freePort());
  const ownsDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'changeq-redis-'));
  mkdirSync(dataDir, { recursive: true });
  const certificates = options.tls ? makeTestCertificates(dataDir) : undefined;
  const configFile = writeConfig(dataDir, options);
  const args = [
    ...(configFile === undefined ? [] : [configFile]),
    ...(certificates === undefined
      ? ['--port', String(port)]
      : [
          '--port',
          '0',
          '--tls-port',
          String(port),
          '--tls-cert-file',
          certificates.serverCert,
          '--tls-key-file',
          certificates.serverKey,
          '--tls-ca-cert-file',
          certificates.ca,
          '--tls-auth-clients',
          options.tls?.clientCertificates ? 'yes' : 'no',
        ]),
    '--bind',
    '127.0.0.1',
    '--dir',
    dataDir,
    '--appendonly',
    'yes',
    '--appendfsync',
    options.appendfsync ?? 'everysec',
    '--maxmemory-policy',
    'noeviction',
    '--save',
    '',
    '--daemonize',
    'no',
    '--protected-mode',
    'yes',
    '--logfile',
    join(dataDir, 'redis.log'),
    ...(options.extraArgs ?? []),
  ];
  const launch = async () => {
    const child = spawnTracked(redisServerBinary(), args, {
      stdio: 'ignore',
      detached: (options.detached ?? false) || (options.ownProcessGroup ?? false),
      outlive: options.detached ?? false,
    });
    if (child.pid === undefined) throw new Error(`could not start ${redisServerBinary()}`);
    if (options.detached) child.unref();
    const deadline = Date.now() + 60_000;
    const ping = {
      ...(options.password === undefined ? {} : { password: options.password }),
      ...(certificates === undefined
        ? {}
        : {
            tls: {
              ca: certificates.ca,
              cert: certificates.clientCert,
              key: certificates.clientKey,
            },
          }),
    };
    while (!(await pingRedis(port, '127.0.0.1', 1000, ping))) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        await terminate(child.pid, 'SIGKILL');
        throw new Error(
          `redis-server did not start on port ${port}; see ${join(dataDir, 'redis.log')}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return child;
  };

  const server = await restartable(launch, () => {
    if (ownsDir) rmSync(dataDir, { recursive: true, force: true });
  });
  const scheme = certificates === undefined ? 'redis' : 'rediss';
  const urlFor = (user?: { name: string; password: string }) =>
    user === undefined
      ? `${scheme}://127.0.0.1:${port}`
      : `${scheme}://${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}@127.0.0.1:${port}`;
  return {
    url:
      options.password === undefined
        ? urlFor()
        : `${scheme}://:${encodeURIComponent(options.password)}@127.0.0.1:${port}`,
    urlFor,
    tls:
      certificates === undefined
        ? undefined
        : {
            ...certificates,
            env: {
              REDIS_TLS_CA: certificates.ca,
              REDIS_TLS_CERT: certificates.clientCert,
              REDIS_TLS_KEY: certificates.clientKey,
            },
          },
    port,
    dataDir,
    get pid() {
      return server.pid;
    },
    stop: () => server.stop(),
    kill: (signal) => server.kill(signal),
    restart: () => server.restart(),
  };
}

/** A redis.conf argument that holds any bytes: double-quoted, every byte as \xHH. */
function quoted(value: string): string {
  return `"${[...Buffer.from(value, 'utf8')].map((byte) => `\\x${byte.toString(16).padStart(2, '0')}`).join('')}"`;
}

/** The secrets of the server (passwords, users) in a config file only its owner can read. */
function writeConfig(dataDir: string, options: RedisServerOptions): string | undefined {
  const lines: string[] = [];
  if (options.password !== undefined) lines.push(`requirepass ${quoted(options.password)}`);
  for (const user of options.users ?? []) {
    if (!/^[A-Za-z0-9_-]+$/.test(user.name)) {
      throw new Error(
        `startRedis: the ACL user name ${JSON.stringify(user.name)} must be letters, digits, - or _`,
      );
    }
    lines.push(`user ${user.name} reset on ${quoted(`>${user.password}`)} ${user.rules}`);
  }
  if (lines.length === 0) return undefined;
  const file = join(dataDir, 'changeq-secrets.conf');
  writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}
