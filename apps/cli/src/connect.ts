import type { Redis } from 'ioredis';
import type { MongoClient } from 'mongodb';
import { UserError, createMongoClient, describeMongoFailure } from '@changeq/shared';
import {
  checkRedisDatabase,
  createRedis,
  describeRedisFailure,
  ingestConnectionName,
} from '@changeq/store';
import type { Settings } from './settings.js';

const firstLine = (error: unknown) =>
  (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? 'no answer';

/** A Redis connection that gives up after the connect timeout with one clear line. */
export async function connectRedis(settings: Settings): Promise<Redis> {
  const url = settings.redisUrl;
  const timeoutMs = settings.connectTimeoutMs;
  const redis = createRedis(url, { role: 'cli', connectTimeoutMs: timeoutMs });
  let lastError: unknown;
  redis.on('error', (error) => (lastError = error));
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    const { problem, fix } = describeRedisFailure(lastError ?? error, url);
    throw new UserError(
      problem,
      fix.replace('check REDIS_URL', 'check REDIS_URL (or --redis-url)'),
    );
  } finally {
    clearTimeout(timer);
  }
  try {
    await checkRedisDatabase(redis, url);
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  return redis;
}

/** A MongoDB connection that gives up after the connect timeout with one clear line. */
export async function connectMongo(settings: Settings): Promise<MongoClient> {
  const uri = settings.mongodbUri;
  const timeoutMs = settings.connectTimeoutMs;
  const client = createMongoClient(uri, {
    appName: 'changeq-cli',
    serverSelectionTimeoutMS: timeoutMs,
    connectTimeoutMS: timeoutMs,
  });
  try {
    await client.connect();
    await client.db('admin').command({ ping: 1 });
    return client;
  } catch (error) {
    await client.close().catch(() => undefined);
    const { problem, fix } = describeMongoFailure(error, uri);
    throw new UserError(
      problem,
      fix.replace('check MONGODB_URI', 'check MONGODB_URI (or --mongodb-uri)'),
    );
  }
}

export interface IngestConnection {
  addr: string;
  ageSeconds: number;
  idleSeconds: number;
}

/**
 * The Redis connections of a running ingest: its ioredis connection is named
 * `changeq-ingest-<INGEST_ID>` (CLIENT SETNAME), and it holds it for as long as it runs.
 */
export async function ingestConnections(
  redis: Redis,
  ingestId: string,
): Promise<IngestConnection[]> {
  const name = ingestConnectionName(ingestId);
  const list = (await redis.client('LIST')) as string;
  const found: IngestConnection[] = [];
  for (const line of list.split('\n')) {
    const fields = new Map(
      line
        .trim()
        .split(' ')
        .map((pair) => {
          const eq = pair.indexOf('=');
          return [pair.slice(0, eq), pair.slice(eq + 1)] as const;
        }),
    );
    if (fields.get('name') !== name) continue;
    found.push({
      addr: fields.get('addr') ?? '?',
      ageSeconds: Number(fields.get('age') ?? 0),
      idleSeconds: Number(fields.get('idle') ?? 0),
    });
  }
  return found;
}

/**
 * Refuses when an ingest with this id is connected to Redis: commands that rewrite its position
 * must not race with it. `skipCheck`: the operator vouches that it is stopped (when CLIENT LIST
 * is not allowed).
 */
export async function refuseWhileIngestRuns(
  redis: Redis,
  ingestId: string,
  what: string,
  skipCheck: boolean,
): Promise<void> {
  if (skipCheck) return;
  let connections: IngestConnection[];
  try {
    connections = await ingestConnections(redis, ingestId);
  } catch (error) {
    throw new UserError(
      `cannot tell whether the ingest "${ingestId}" is running: Redis refused CLIENT LIST (${firstLine(error)})`,
      `stop the ingest yourself, then pass --ingest-stopped to ${what} without this check`,
    );
  }
  if (connections.length > 0) {
    const where = connections.map((c) => `${c.addr}, connected ${c.ageSeconds} s`).join('; ');
    throw new UserError(
      `the ingest "${ingestId}" is running (Redis connection ${where}); ${what} would race with it`,
      `stop the ingest (SIGTERM; it stores its token and exits), then run this again`,
    );
  }
}
