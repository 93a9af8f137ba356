/**
 * Every Redis connection a changeq process opens, by role. A role fixes the connection's name
 * (CLIENT LIST shows who is connected: `changeq status` finds a running ingest by its name) and
 * how it behaves while Redis is away: how often it reconnects (`retryStrategy`), whether
 * commands wait for the connection (`enableOfflineQueue`) and how many reconnections a command
 * survives before it fails (`maxRetriesPerRequest`).
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { redisClusterNodes, redisConnectionOptions } from '@changeq/shared';
import { useHashTags } from './keys.js';

export type RedisRole =
  /** The ingest's commits: the queues' transactions, watermarks and the resume token. */
  | { role: 'ingest'; ingestId: string }
  /** A worker's shared connection: BullMQ's Worker and Queue, the lease, the session's own commands. */
  | { role: 'worker'; worker: string }
  /** A worker's wait for new jobs on the queue's marker (BZPOPMIN blocks the connection). */
  | { role: 'worker-marker'; worker: string }
  /** What /metrics of an ingest or a worker reads (queue counts, leases). */
  | {
      role: 'metrics';
      of: { role: 'ingest'; ingestId: string } | { role: 'worker'; worker: string };
    }
  /** One command of the operator CLI. */
  | { role: 'cli'; connectTimeoutMs: number }
  /** Bull Board: every queue it shows, on one connection. */
  | { role: 'board' };

/** The name an ingest's commit connection goes by while it runs (CLIENT SETNAME). */
export function ingestConnectionName(ingestId: string): string {
  return `changeq-ingest-${ingestId}`;
}

/** The connection name of a role, as CLIENT LIST shows it. */
export function connectionName(role: RedisRole): string {
  switch (role.role) {
    case 'ingest':
      return ingestConnectionName(role.ingestId);
    case 'worker':
    case 'worker-marker':
      return `changeq-worker:${role.worker}`;
    case 'metrics':
      return `${connectionName(role.of)}:metrics`;
    case 'cli':
      return 'changeq-cli';
    case 'board':
      return 'changeq-board';
  }
}

/** Capped exponential delays between reconnections: `baseMs` × 2^n up to `capMs`. */
const exponential = (baseMs: number, maxExponent: number, capMs: number) => (times: number) =>
  Math.min(baseMs * 2 ** Math.min(times, maxExponent), capMs);

/** The behaviour of each role while Redis is unreachable, chosen (and explained) here once. */
function policy(role: RedisRole): RedisOptions {
  switch (role.role) {
    case 'ingest':
      // Fail commands fast while Redis is away (2 reconnections): the ingest retries whole
      // batches itself, from its last stored position.
      return {
        lazyConnect: true,
        maxRetriesPerRequest: 2,
        retryStrategy: exponential(100, 6, 3000),
      };
    case 'worker':
    case 'worker-marker':
      // BullMQ's Worker needs commands that wait for the connection however long it takes
      // (null); the session's lease decides meanwhile whether this process may still act.
      return {
        lazyConnect: true,
        maxRetriesPerRequest: null,
        retryStrategy: exponential(100, 6, 5000),
      };
    case 'metrics':
      // A scrape must answer now: commands fail at once while Redis is away (no offline
      // queue, 1 retry), and the scrape reports it.
      return {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        retryStrategy: exponential(200, 5, 5000),
      };
    case 'cli': {
      // Never retry the first connection (the command says at once that Redis is unreachable);
      // once connected, ride out a short blip (5 tries, 200 ms apart).
      return {
        lazyConnect: true,
        connectTimeout: role.connectTimeoutMs,
        maxRetriesPerRequest: 2,
      };
    }
    case 'board':
      // Commands fail at once while Redis is down (the board answers 503 meanwhile), and the
      // connection keeps coming back on its own.
      return {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        retryStrategy: (times) => Math.min(250 * times, 2000),
      };
  }
}

/**
 * A connection to the Redis at `url` for one role: redis:// or rediss:// for a single Redis,
 * redis+cluster:// or rediss+cluster:// (seed nodes `host:port,host:port,...`) for a Redis
 * Cluster. The kind of Redis also fixes how this process names its keys (keys.ts: hash tags on
 * a cluster), so every process creates its first connection before it names a key.
 */
export function createRedis(url: string, role: RedisRole): Redis {
  const nodes = redisClusterNodes(url);
  useHashTags(nodes !== undefined);
  const options: RedisOptions = {
    ...redisConnectionOptions(url),
    connectionName: connectionName(role),
    ...policy(role),
  };
  if (role.role === 'cli') {
    let connected = false;
    options.retryStrategy = (times) => (!connected || times > 5 ? null : 200);
    const redis = nodes === undefined ? new Redis(options) : createCluster(nodes, options);
    redis.once('ready', () => (connected = true));
    return redis;
  }
  return nodes === undefined ? new Redis(options) : createCluster(nodes, options);
}

/**
 * An ioredis Cluster with a role's policy: the per-node options (credentials, TLS, name,
 * retries per command) go to every node's connection, the reconnection policy and the offline
 * queue apply to the cluster as a whole.
 *
 * Typed as a Redis: a Cluster answers the same commands (BullMQ takes either), and the places
 * where a cluster differs are handled where they matter: a MULTI or a pipeline must stay within
 * one node (keys.ts's hash tags), CLIENT LIST answers for one node.
 */
function createCluster(nodes: { host: string; port: number }[], options: RedisOptions): Redis {
  const { lazyConnect, retryStrategy, enableOfflineQueue, ...perNode } = options;
  // The nodes come from the cluster's own layout; a cluster has only database 0.
  delete perNode.host;
  delete perNode.port;
  delete perNode.db;
  const clusterOptions: ClusterOptions = {
    redisOptions: perNode,
    ...(lazyConnect === undefined ? {} : { lazyConnect }),
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(typeof retryStrategy === 'function'
      ? { clusterRetryStrategy: (times: number) => retryStrategy(times) ?? null }
      : {}),
  };
  return new Cluster(nodes, clusterOptions) as unknown as Redis;
}
