import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import type { Logger } from '@changeq/shared';
import { createRedis, type RedisRole } from '@changeq/store';
import { QueueCounts, registerQueueMetrics } from './queue-counts.js';
import { startHttpServer, type Readiness, type ReadinessCheck } from './server.js';
import type { HttpSettings } from './settings.js';

/**
 * The Redis connection metrics read through: its own, so a scrape never queues behind (or
 * delays) the process's real work, failing fast while Redis is away (scrapes report it).
 */
export function metricsRedis(
  redisUrl: string,
  of: Extract<RedisRole, { role: 'metrics' }>['of'],
  log: Logger,
): Redis {
  const redis = createRedis(redisUrl, { role: 'metrics', of });
  redis.on('error', (error) => log.debug({ err: error }, 'metrics redis connection error'));
  redis.connect().catch(() => undefined); // retried by ioredis meanwhile
  return redis;
}

export interface ServeOptions {
  http: HttpSettings;
  registry: Registry;
  /** From metricsRedis(); closed with the server. */
  redis: Redis;
  prefix: string;
  /** BullMQ queues whose job counts are exported (event and dead-letter queues); see QueueCounts. */
  queues: readonly string[] | (() => readonly string[]);
  readiness: () => Promise<Readiness>;
  /** See HttpServerOptions.liveness. */
  liveness?: () => ReadinessCheck;
  log: Logger;
}

/**
 * Adds the queue metrics to `registry` and serves /metrics, /healthz and /readyz; a failure to
 * listen (a port in use) leaves no connection behind that would keep the process alive.
 */
export async function serveObservability(
  options: ServeOptions,
): Promise<{ url: string; close(): Promise<void> }> {
  const counts = new QueueCounts({
    redis: options.redis,
    prefix: options.prefix,
    queues: options.queues,
    log: options.log,
  });
  registerQueueMetrics(options.registry, counts);
  const release = async () => {
    await counts.close();
    options.redis.disconnect();
  };
  let server;
  try {
    server = await startHttpServer({
      port: options.http.port,
      host: options.http.host,
      registry: options.registry,
      readiness: options.readiness,
      ...(options.liveness ? { liveness: options.liveness } : {}),
      log: options.log,
    });
  } catch (error) {
    await release();
    throw error;
  }
  options.log.info({ url: server.url }, `serving ${server.url}/metrics, /healthz and /readyz`);
  return {
    url: server.url,
    async close() {
      await server.close();
      await release();
    },
  };
}
