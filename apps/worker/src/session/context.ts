/** What the parts of a session share: the term's lock token and lease, and its connections. */
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@changeq/shared';
import type { Lease } from '@changeq/store';
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
}

/** Throws StopWork unless the lease is held: a process whose lease may have expired acts on no job. */
export function ensureLease(lease: Lease): void {
  if (!lease.isValid()) throw new StopWork('the worker lease is not held');
}
