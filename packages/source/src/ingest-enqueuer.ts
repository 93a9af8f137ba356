import type { Redis } from 'ioredis';
import type { Logger } from '@changeq/shared';
import { Enqueuer, eventQueueName, ingestKeys } from '@changeq/store';
import type { IngestConfig } from './config.js';

/**
 * The enqueuer of an ingest's queues: the ingest's and `changeq resync`'s (same keys, same job
 * options). `afterQueueCommit` is the ingest's crash point for its fault tests.
 */
export function ingestEnqueuer(
  config: IngestConfig,
  redis: Redis,
  log: Logger,
  afterQueueCommit?: () => void,
  /** `fenced`: the ingest's own commits (standby ingests), fenced by the lease (see Enqueuer). */
  options: { fenced?: boolean } = {},
): Enqueuer {
  const keys = ingestKeys(config.queuePrefix, config.ingestId);
  return new Enqueuer({
    redis,
    prefix: config.queuePrefix,
    queueNames: config.workers.names.map(eventQueueName),
    watermarkKey: (queue, kind) => keys.watermark(queue, kind),
    jobOptions: {
      removeOnComplete: config.keepCompleted,
      removeOnFail: config.keepFailed,
    },
    log,
    ...(afterQueueCommit ? { afterQueueCommit } : {}),
    ...(options.fenced ? { fenceKey: (queue: string) => keys.queueFence(queue) } : {}),
  });
}
