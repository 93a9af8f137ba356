/**
 * The tasks a session gives the scheduler, one kind for each place an event comes from: a job of
 * the worker's queue, a job of its dead-letter queue being re-run, and a document's whole re-run
 * line, expanded into the latter when it is next in line.
 */
import type { Job } from 'bullmq';
import type { ChangeEvent, EventJobData } from '@changeq/shared';
import { HANDOFF_JOB_NAME, type DeadLetterJobData } from '@changeq/store';
import type { SchedulerTask } from '../scheduler/scheduler.js';
import { readProgress } from './attempts.js';

/** A task whose handler runs: one BullMQ job and the event it carries. */
interface JobTask<Kind extends string, Data> extends SchedulerTask {
  kind: Kind;
  jobId: string;
  job: Job;
  data: Data;
  /** The event, decoded from `data` by the first handler call and kept for the retries. */
  event?: ChangeEvent;
}

/**
 * A job of the worker's queue (one without data fails its handler call). A ring change's
 * handoff marker is one too, made a checkpoint (`checkpoint: true`, `handoff`: its epoch).
 */
export type EventTask = JobTask<'event', EventJobData | undefined> & { handoff?: number | string };

/** A job of the worker's dead-letter queue, run again after an operator's retry. */
export type ReplayTask = JobTask<'replay', DeadLetterJobData>;

/** A document's re-run line: the scheduler asks to expand it into replays when it is next. */
export interface ReplayLineTask extends SchedulerTask {
  kind: 'replay-line';
  key: string;
  expandable: true;
}

export type RunTask = EventTask | ReplayTask;
export type WorkTask = RunTask | ReplayLineTask;

/**
 * The data of a handoff marker job: a ring epoch (the ingest's ring-change.ts), or a routing
 * key's change (`key-…`, the planner's planEvent).
 */
function handoffEpoch(job: Job): number | string | null {
  const data = job.data as { kind?: unknown; epoch?: unknown } | undefined;
  if (job.name !== HANDOFF_JOB_NAME || data?.kind !== 'handoff') return null;
  const epoch = data.epoch;
  return Number.isInteger(epoch) || (typeof epoch === 'string' && epoch.startsWith('key-'))
    ? (epoch as number | string)
    : null;
}

export function eventTask(job: Job, id: string): EventTask {
  const epoch = handoffEpoch(job);
  const line = (job.data as { line?: unknown } | undefined)?.line;
  if (typeof epoch === 'string' && typeof line === 'string') {
    // A routing key change's marker: a task of the old key's line (not a checkpoint), which the
    // session admits by writing its flag once everything before it in that line finished.
    return {
      id: `e:${id}`,
      jobId: id,
      kind: 'event',
      key: line,
      handoff: epoch,
      source: 'event',
      priorAttempts: 0,
      job,
      data: undefined,
    };
  }
  if (epoch !== null) {
    return {
      id: `e:${id}`,
      jobId: id,
      kind: 'event',
      key: null,
      checkpoint: true,
      handoff: epoch,
      source: 'event',
      priorAttempts: 0,
      job,
      data: undefined,
    };
  }
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
    data,
  };
}

export function replayLineTask(doc: string): ReplayLineTask {
  return {
    id: `line:${doc}`,
    kind: 'replay-line',
    expandable: true,
    key: doc,
    source: 'replay',
    priorAttempts: 0,
  };
}

export function replayTask(job: Job, id: string, doc: string | null): ReplayTask {
  const { attempts, failure } = readProgress(job.progress);
  return {
    id: `r:${id}`,
    jobId: id,
    kind: 'replay',
    key: doc,
    source: 'replay',
    priorAttempts: attempts,
    lastFailure: failure,
    job,
    data: job.data as DeadLetterJobData,
  };
}
