/**
 * Retries that outlive a process: the attempts made so far and the last failure are kept in the
 * job's progress, so counting goes on after a restart (the backoff itself is the scheduler's).
 */
import type { Job } from 'bullmq';
import type { Logger } from '@changeq/shared';
import type { HandlerFailure } from '../scheduler/invoke.js';

/** The persisted progress of a job: attempts made so far and the last failure. */
export interface AttemptProgress {
  attempt: number;
  lastError: string;
  lastFailedAt: string;
}

export function readProgress(progress: unknown): { attempts: number; failure?: HandlerFailure } {
  if (typeof progress !== 'object' || progress === null) return { attempts: 0 };
  const p = progress as Partial<AttemptProgress>;
  const attempts = typeof p.attempt === 'number' && p.attempt > 0 ? Math.floor(p.attempt) : 0;
  if (attempts === 0) return { attempts };
  return {
    attempts,
    failure: { message: typeof p.lastError === 'string' ? p.lastError : 'unknown', kind: 'error' },
  };
}

/** Persists a failed attempt that the scheduler will retry after its backoff. */
export async function recordFailedAttempt(
  task: { jobId: string; job?: Job },
  attempt: number,
  failure: HandlerFailure,
  log: Logger,
): Promise<void> {
  const progress: AttemptProgress = {
    attempt,
    lastError: failure.message,
    lastFailedAt: new Date().toISOString(),
  };
  await task.job?.updateProgress(progress);
  log.info(
    { jobId: task.jobId, attempt, error: failure.message },
    'handler failed; retrying after backoff',
  );
}
