/** What the parts of a session share: the term's lock token and lease, its connections, its reports. */
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@changeq/shared';
import { redisErrorKind, type Lease } from '@changeq/store';
import type { RedisOperation, WorkerEvents } from '../hooks.js';
import { StopWork } from '../scheduler/scheduler.js';

export interface SessionContext {
  /** Shared connection (maxRetriesPerRequest: null) for BullMQ and our own commands. */
  redis: Redis;
  /** BullMQ's worker for the event queue, used without a processor (see fetch-loop.ts). */
  worker: Worker;
  /** The token in every job lock this session takes: `<lease owner>:<fence>`. */
  token: string;
  lease: Lease;
  lockDurationMs: number;
  log: Logger;
  /** Fires when the session stops fetching (stop or halt); nothing new is started after it. */
  stopSignal: AbortSignal;
  /** Where failures and reclaims are reported (the metrics). */
  events: WorkerEvents;
  /** Whether the operator paused the worker (session/pause.ts): nothing is fetched meanwhile. */
  paused?: () => boolean;
}

/** Throws StopWork unless the lease is held: a process whose lease may have expired acts on no job. */
export function ensureLease(lease: Lease): void {
  if (!lease.isValid()) throw new StopWork('the worker lease is not held');
}

/**
 * A Redis call failed and will be retried: counted by the kind of its error, and logged at debug
 * with `debugMessage` (a caller that logs it otherwise leaves it out).
 */
export function redisFailed(
  ctx: Pick<SessionContext, 'log' | 'events'>,
  operation: RedisOperation,
  error: unknown,
  debugMessage?: string,
): void {
  if (debugMessage !== undefined) ctx.log.debug({ err: error }, debugMessage);
  ctx.events.redisFailed({ operation, error: redisErrorKind(error) });
}
