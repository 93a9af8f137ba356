/**
 * The tasks a session gives the scheduler, one kind for each place an event comes from: a job of
 * the worker's queue, a job of its dead-letter queue being re-run, and a document's whole re-run
 * line, expanded into the latter when it is next in line.
 */
import type { Job } from 'bullmq';
import type { ChangeEvent, EventJobData } from '@changeq/shared';
import type { DeadLetterJobData } from '@changeq/store';
import type { SchedulerTask } from '../scheduler/scheduler.js';
import { readProgress } from './attempts.js';

export interface WorkTask extends SchedulerTask {
  kind: 'event' | 'replay' | 'replay-line';
  /** event: the job in the worker's queue; replay: the job in the dead-letter queue. */
  job?: Job;
  jobId: string;
  data?: EventJobData;
  event?: ChangeEvent;
}

export function eventTask(job: Job, id: string): WorkTask {
  const data = job.data as EventJobData | undefined;
  const key =
    typeof data?.doc === 'string' ? data.doc : data?.doc === null ? null : `invalid:${id}`;
  const { attempts, failure } = readProgress(job.progress);
  return {
    id: `e:${id}`,
    jobId: id,
    kind: 'event',
    key,
    source: 'event',
    priorAttempts: attempts,
    lastFailure: failure,
    job,
    ...(data ? { data } : {}),
  };
}

export function replayLineTask(doc: string): WorkTask {
  return {
    id: `line:${doc}`,
    jobId: `line:${doc}`,
    kind: 'replay-line',
    expandable: true,
    key: doc,
    source: 'replay',
    priorAttempts: 0,
  };
}

export function replayTask(job: Job, doc: string | null): WorkTask {
  const { attempts, failure } = readProgress(job.progress);
  const data = job.data as DeadLetterJobData;
  return {
    id: `r:${job.id!}`,
    jobId: job.id!,
    kind: 'replay',
    key: doc,
    source: 'replay',
    priorAttempts: attempts,
    lastFailure: failure,
    job,
    data,
  };
}
