import type { HandlerFailure } from './invoke.js';

/** Identifies a job in hook events. `doc` is null for namespace-wide events (barriers). */
export interface HookJob {
  jobId: string;
  doc: string | null;
  /** 'event': fetched from the worker's queue; 'replay': re-run from the dead-letter queue. */
  source: 'event' | 'replay';
}

/**
 * What the scheduler reports while it works: the seam for metrics and health checks. Every hook
 * is optional and called synchronously; a hook that throws is logged and ignored, it never
 * changes what the scheduler does.
 */
export interface SchedulerHooks {
  /** A job was taken into the scheduler (fetched, recovered or replayed). */
  jobQueued?(job: HookJob): void;
  /** A handler call starts (it holds one of the `concurrency` slots until it ends). */
  handlerStarted?(job: HookJob & { attempt: number }): void;
  /** A handler call ended. */
  handlerFinished?(
    job: HookJob & {
      attempt: number;
      durationMs: number;
      outcome: 'ok' | 'failed' | 'aborted';
      failure?: HandlerFailure;
    },
  ): void;
  /** A failed attempt will be retried after `delayMs`. */
  retryScheduled?(
    job: HookJob & { attempt: number; delayMs: number; failure: HandlerFailure },
  ): void;
  /** The last attempt failed: the event went to the dead-letter queue. */
  deadLettered?(job: HookJob & { attempts: number; failure: HandlerFailure }): void;
  /** The event's document is blocked by a dead letter: the event was parked behind it. */
  parked?(job: HookJob): void;
  /** The job is finished (completed, dead-lettered or parked) and left the scheduler. */
  jobDone?(job: HookJob & { result: 'completed' | 'dead-lettered' | 'parked' | 'dropped' }): void;
  /** Sizes after every change: jobs held, handler calls running, jobs waiting for a retry. */
  backlog?(sizes: { held: number; running: number; backingOff: number }): void;
}

/**
 * One hook of every hooks object in `list` that has it, as a single function: each call is
 * isolated (a hook that throws goes to `onHookError`, the others still run).
 */
export function fanOut<H extends object, K extends keyof H>(
  list: readonly H[],
  name: K,
  onHookError: (error: unknown) => void,
): NonNullable<H[K]> {
  const call = (arg: unknown) => {
    for (const hooks of list) {
      const fn = hooks[name] as ((a: unknown) => void) | undefined;
      if (fn === undefined) continue;
      try {
        fn.call(hooks, arg);
      } catch (error) {
        onHookError(error);
      }
    }
  };
  return call as NonNullable<H[K]>;
}

/** Calls every hook set in `list`, isolating failures. */
export function combineHooks(
  list: readonly SchedulerHooks[],
  onHookError: (error: unknown) => void,
): Required<SchedulerHooks> {
  const call = <K extends keyof SchedulerHooks>(name: K) => fanOut(list, name, onHookError);
  return {
    jobQueued: call('jobQueued'),
    handlerStarted: call('handlerStarted'),
    handlerFinished: call('handlerFinished'),
    retryScheduled: call('retryScheduled'),
    deadLettered: call('deadLettered'),
    parked: call('parked'),
    jobDone: call('jobDone'),
    backlog: call('backlog'),
  };
}
