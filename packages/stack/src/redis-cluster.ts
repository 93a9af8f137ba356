/**
 * A local Redis Cluster for tests and `npm run stack -- up --cluster`: masters of Debian's
 * redis-server with `--cluster-enabled yes`, each on a loopback port of its own, joined by
 * `redis-cli --cluster create` (no replicas), ready once every node reports `cluster_state:ok`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts } from '@changeq/processes';
import { startRedis, type RunningRedis } from './redis-server.js';
import { pingRedis } from './resp-ping.js';

export interface RedisClusterOptions {
  /** How many masters (Redis Cluster needs at least 3). Default 3. */
  masters?: number;
  /** Each node's data goes to `<dataDir>/node-<i>`. Default: fresh temporary folders. */
  dataDir?: string;
  /** Keep running after this process exits (the `stack up --cluster` command). */
  detached?: boolean;
}

export interface RunningRedisCluster {
  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...`: the URL form every changeq process takes. */
  readonly url: string;
  readonly nodes: readonly RunningRedis[];
  stop(): Promise<void>;
}

export function redisCliBinary(): string {
  const fromEnv = process.env.REDIS_CLI_BIN;
  if (fromEnv) return fromEnv;
  for (const candidate of ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli']) {
    if (existsSync(candidate)) return candidate;
  }
  return 'redis-cli';
}

/** The arguments that make a redis-server a cluster node (its nodes.conf in its data folder). */
export const CLUSTER_NODE_ARGS = [
  '--cluster-enabled',
  'yes',
  '--cluster-config-file',
  'nodes.conf',
  '--cluster-node-timeout',
  '5000',
] as const;

/** One CLUSTER INFO field of the node at `port` (redis-cli, which every cluster host has). */
function clusterInfo(port: number, field: string): string | undefined {
  const out = spawnSync(
    redisCliBinary(),
    ['-h', '127.0.0.1', '-p', String(port), 'cluster', 'info'],
    {
      encoding: 'utf8',
    },
  );
  return new RegExp(`^${field}:(\\S+)`, 'm').exec(out.stdout ?? '')?.[1];
}

export async function startRedisCluster(
  options: RedisClusterOptions = {},
): Promise<RunningRedisCluster> {
  const count = options.masters ?? 3;
  if (count < 3) throw new Error('startRedisCluster: Redis Cluster needs at least 3 masters');
  const nodes: RunningRedis[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  try {
    // The nodes start side by side: their ports are chosen together, so that they differ.
    const ports = await freePorts(count);
    const started = await Promise.allSettled(
      Array.from({ length: count }, (_, i) =>
        startRedis({
          port: ports[i]!,
          ...(options.dataDir === undefined ? {} : { dataDir: join(options.dataDir, `node-${i}`) }),
          ...(options.detached === undefined ? {} : { detached: options.detached }),
          extraArgs: CLUSTER_NODE_ARGS,
        }),
      ),
    );
    for (const result of started) if (result.status === 'fulfilled') nodes.push(result.value);
    const failed = started.find((result) => result.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    const created = spawnSync(
      redisCliBinary(),
      [
        '--cluster',
        'create',
        ...nodes.map((node) => `127.0.0.1:${node.port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (created.status !== 0) {
      throw new Error(
        `redis-cli --cluster create failed (${created.status ?? created.signal ?? created.error?.message}): ${(created.stdout + created.stderr).trim().split('\n').slice(-3).join(' | ')}`,
      );
    }
    // Every node must know the whole layout before a client asks any of them for it.
    const deadline = Date.now() + 60_000;
    for (const node of nodes) {
      while (clusterInfo(node.port, 'cluster_state') !== 'ok') {
        if (Date.now() > deadline || !(await pingRedis(node.port, '127.0.0.1', 1000))) {
          throw new Error(`the Redis Cluster node on port ${node.port} did not become ready`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url: `redis+cluster://${nodes.map((node) => `127.0.0.1:${node.port}`).join(',')}`,
    nodes,
    stop,
  };
}
