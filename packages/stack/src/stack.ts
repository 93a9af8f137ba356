import { freePorts } from '@changeq/processes';
import {
  externalMongo,
  startMongo,
  type MongoServerProcessOptions,
  type RunningMongo,
} from './mongo-server.js';
import { startRedis, type RedisServerOptions, type RunningRedis } from './redis-server.js';

export interface StackOptions {
  redis?: RedisServerOptions;
  mongo?: MongoServerProcessOptions;
  /** Use this MongoDB instead of starting one (default: the MONGODB_URI environment variable). */
  mongodbUri?: string;
}

export interface RunningStack {
  readonly mongodbUri: string;
  readonly redisUrl: string;
  readonly redis: RunningRedis;
  readonly mongo: RunningMongo;
  stop(): Promise<void>;
}

/**
 * Starts a Redis and a MongoDB for a test or the demo. When MONGODB_URI is set, that server is
 * used instead of the project's own, so the same tests run against a real MongoDB.
 */
export async function startStack(options: StackOptions = {}): Promise<RunningStack> {
  const external = options.mongodbUri ?? process.env.MONGODB_URI;
  // The two start side by side: their ports are chosen together, so that they differ.
  const [redisPort, mongoPort] = await freePorts(2);
  const [redis, mongo] = await Promise.all([
    startRedis({ ...options.redis, port: options.redis?.port ?? redisPort! }),
    external
      ? Promise.resolve(externalMongo(external))
      : startMongo({ ...options.mongo, port: options.mongo?.port ?? mongoPort! }),
  ]);
  return {
    get mongodbUri() {
      return mongo.uri;
    },
    redisUrl: redis.url,
    redis,
    mongo,
    async stop() {
      await Promise.all([redis.stop(), mongo.stop()]);
    },
  };
}
