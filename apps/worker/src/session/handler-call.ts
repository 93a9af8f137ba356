/** One handler call for a task: the event decoded (once), its HandlerContext, the dispatch. */
import {
  decodeEvent,
  type HandlerContext,
  type Logger,
  type TransactionMark,
} from '@changeq/shared';
import type { Dispatch } from '../handlers/load.js';
import type { RunTask, WorkTask } from './tasks.js';

export interface HandlerEnv {
  /** The worker name, as handlers see it in `ctx.worker`. */
  worker: string;
  dispatch: Dispatch;
  log: Logger;
}

export function callHandler(
  env: HandlerEnv,
  task: WorkTask,
  attempt: number,
  getSignal: () => AbortSignal,
): unknown {
  if (task.kind === 'replay-line') throw new Error(`${task.id} is expanded, never run`);
  if (task.data === undefined) throw new Error('the job has no data');
  task.event ??= decodeEvent(task.data);
  const ctx = new CallContext(env, task, attempt, getSignal);
  const outcome = env.dispatch(task.event, ctx);
  if (!outcome.matched) {
    ctx.log.debug('no handler matches this event; completed as a no-op');
    return undefined;
  }
  return outcome.result;
}

/**
 * A call's HandlerContext: a class, so that `signal` and `log` are getters of its prototype. An
 * object literal with getters made two closures per call, which V8 kept reachable from the old
 * generation well past the call: every task's objects were promoted.
 */
class CallContext implements HandlerContext {
  readonly attempt: number;
  readonly worker: string;
  readonly idempotencyKey: string;
  readonly jobId: string;
  /** Absent outside a transaction, as the interface documents (declared: no own property). */
  declare transaction?: TransactionMark;
  readonly #getSignal: () => AbortSignal;
  readonly #parent: Logger;
  readonly #data: RunTask['data'];
  #log: Logger | undefined;

  constructor(env: HandlerEnv, task: RunTask, attempt: number, getSignal: () => AbortSignal) {
    this.attempt = attempt;
    this.worker = env.worker;
    this.idempotencyKey = task.jobId;
    this.jobId = task.jobId;
    const txn = task.data?.txn;
    if (txn) this.transaction = txn;
    this.#getSignal = getSignal;
    this.#parent = env.log;
    this.#data = task.data;
  }

  get signal(): AbortSignal {
    return this.#getSignal();
  }

  get log(): Logger {
    const data = this.#data;
    this.#log ??= this.#parent.child({
      jobId: this.jobId,
      ns: data?.ns,
      op: data?.op,
      attempt: this.attempt,
    });
    return this.#log;
  }
}
