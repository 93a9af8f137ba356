import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { freePort, spawnTracked, terminate } from '@changeq/processes';
import { restartable } from './restartable.js';
import { pingRedis } from './resp-ping.js';

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
}

export interface RunningRedis {
  readonly url: string;
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
  const args = [
    '--port',
    String(port),
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
    while (!(await pingRedis(port))) {
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
  return {
    url: `redis://127.0.0.1:${port}`,
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
