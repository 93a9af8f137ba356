/** One handler call for a task: the event decoded (once), its HandlerContext, the dispatch. */
import { decodeEvent, type HandlerContext } from '@changeq/shared';
import type { Logger } from '@changeq/shared';
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
  const ctx = handlerContext(env, task, attempt, getSignal);
  const outcome = env.dispatch(task.event, ctx);
  if (!outcome.matched) {
    ctx.log.debug('no handler matches this event; completed as a no-op');
    return undefined;
  }
  return outcome.result;
}

function handlerContext(
  env: HandlerEnv,
  task: RunTask,
  attempt: number,
  getSignal: () => AbortSignal,
): HandlerContext {
  let log: Logger | undefined;
  const parent = env.log;
  const data = task.data;
  return {
    attempt,
    worker: env.worker,
    idempotencyKey: task.jobId,
    jobId: task.jobId,
    ...(data?.txn ? { transaction: data.txn } : {}),
    get signal() {
      return getSignal();
    },
    get log() {
      log ??= parent.child({ jobId: task.jobId, ns: data?.ns, op: data?.op, attempt });
      return log;
    },
  };
}
