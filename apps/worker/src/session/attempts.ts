/**
 * Retries that outlive a process: the attempts made so far and the last failure are kept in the
 * job's progress, so counting goes on after a restart (the backoff itself is the scheduler's).
 */
import type { HandlerFailure } from '../scheduler/invoke.js';

/** The persisted progress of a job: attempts made so far and the last failure. */
export interface AttemptProgress {
  attempt: number;
  lastError: string;
  lastFailedAt: string;
}

export function attemptProgress(attempt: number, failure: HandlerFailure): AttemptProgress {
  return { attempt, lastError: failure.message, lastFailedAt: new Date().toISOString() };
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
