/**
 * Reaching the servers at start: MongoDB through the reader (its thread owns the connection),
 * then Redis, each tried again until the connect timeout, since a server that is restarting
 * refuses or resets connections for a while. Past the timeout: one line naming the server. A
 * wrong password or certificate is a setting to correct: it stops the ingest at once.
 */
import {
  Backoff,
  UserError,
  describeMongoFailure,
  redactUri,
  routingSpec,
  withinTime,
  type Logger,
} from '@changeq/shared';
import { describeRedisFailure } from '@changeq/store';
import { describeScope, type IngestConfig } from '@changeq/source';
import type { ChangeReader, Clock, RedisConnection } from './ports.js';

export async function reachServers(
  reader: Pick<ChangeReader, 'connect'>,
  redis: RedisConnection,
  settings: Pick<
    IngestConfig,
    'mongodbUri' | 'redisUrl' | 'connectTimeoutMs' | 'watch' | 'workers'
  >,
  context: {
    clock: Clock;
    signal: AbortSignal;
    log: Logger;
    /** Checks made once Redis answers (the database of REDIS_URL exists). */
    checkRedis?: () => Promise<void>;
  },
): Promise<void> {
  const { clock, signal } = context;
  const deadline = clock.now() + settings.connectTimeoutMs;
  const retryUntil = async (
    attempt: () => Promise<unknown>,
    describe: (error: unknown) => { problem: string; fix: string; permanent: boolean },
  ): Promise<void> => {
    const backoff = new Backoff(100, 2000, clock.random);
    for (;;) {
      try {
        await attempt();
        return;
      } catch (error) {
        const failure = describe(error);
        if (failure.permanent || clock.now() > deadline || signal.aborted) {
          throw new UserError(failure.problem, failure.fix);
        }
        await clock.sleep(backoff.next(), signal);
      }
    }
  };
  const mongoUri = redactUri(settings.mongodbUri);
  const redisUrl = redactUri(settings.redisUrl);
  await retryUntil(
    () => reader.connect(),
    (error) => describeMongoFailure(error, settings.mongodbUri),
  );
  // A command on a Redis that refuses connections fails only after ioredis's own retries,
  // seconds past a short connect timeout: one attempt waits no longer than the timeout, and
  // then the line names what the connection last said (ECONNREFUSED, say).
  let redisError: unknown;
  const onRedisError = (error: Error) => (redisError = error);
  redis.on('error', onRedisError);
  try {
    await retryUntil(
      () =>
        withinTime(
          (async () => {
            if (redis.status === 'wait') await redis.connect();
            await redis.ping();
          })(),
          settings.connectTimeoutMs,
          () => redisError ?? new Error(`no answer within ${settings.connectTimeoutMs} ms`),
        ),
      (error) => describeRedisFailure(error, settings.redisUrl),
    );
  } finally {
    redis.off('error', onRedisError);
  }
  await context.checkRedis?.();
  context.log.info(
    {
      mongodbUri: mongoUri,
      redisUrl,
      watch: describeScope(settings.watch),
      workers: settings.workers.names,
      ...(settings.workers.routing.size > 0
        ? {
            routing: Object.fromEntries(
              [...settings.workers.routing].map(([ns, rule]) => [ns, routingSpec(rule)]),
            ),
          }
        : {}),
    },
    'connected',
  );
}
