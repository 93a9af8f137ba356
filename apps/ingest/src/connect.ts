/**
 * Reaching the servers at start: MongoDB through the reader (its thread owns the connection),
 * then Redis, each tried again until the connect timeout, since a server that is restarting
 * refuses or resets connections for a while. Past the timeout: one line naming the server.
 */
import { Backoff, UserError, redactUri, type Logger } from '@changeq/shared';
import { describeScope, type IngestConfig } from '@changeq/source';
import type { ChangeReader, Clock, RedisConnection } from './ports.js';

export async function reachServers(
  reader: Pick<ChangeReader, 'connect'>,
  redis: RedisConnection,
  settings: Pick<
    IngestConfig,
    'mongodbUri' | 'redisUrl' | 'connectTimeoutMs' | 'watch' | 'workers'
  >,
  context: { clock: Clock; signal: AbortSignal; log: Logger },
): Promise<void> {
  const { clock, signal } = context;
  const deadline = clock.now() + settings.connectTimeoutMs;
  const retryUntil = async (attempt: () => Promise<unknown>, fail: (error: Error) => Error) => {
    const backoff = new Backoff(100, 2000, clock.random);
    for (;;) {
      try {
        await attempt();
        return;
      } catch (error) {
        if (clock.now() > deadline || signal.aborted) throw fail(error as Error);
        await clock.sleep(backoff.next(), signal);
      }
    }
  };
  const mongoUri = redactUri(settings.mongodbUri);
  const redisUrl = redactUri(settings.redisUrl);
  await retryUntil(
    () => reader.connect(),
    (error) =>
      new UserError(
        `cannot reach MongoDB at ${mongoUri} (${error.message})`,
        'check MONGODB_URI and that the server is running and reachable (npm run stack -- up starts a local one)',
      ),
  );
  await retryUntil(
    async () => {
      if (redis.status === 'wait') await redis.connect();
      await redis.ping();
    },
    (error) =>
      new UserError(
        `cannot reach Redis at ${redisUrl} (${error.message})`,
        'check REDIS_URL and that the server is running and reachable (npm run stack -- up starts a local one)',
      ),
  );
  context.log.info(
    {
      mongodbUri: mongoUri,
      redisUrl,
      watch: describeScope(settings.watch),
      workers: settings.workers.names,
    },
    'connected',
  );
}
