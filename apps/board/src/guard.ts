/**
 * What the board lets an operator do, checked on the server before every Bull Board API call
 * (Bull Board's `handlerHooks.before`), so a hand-made request cannot do what the UI hides.
 *
 * - Redis not connected: every API call answers 503 `REDIS_UNAVAILABLE` with the reason, at once,
 *   rather than waiting for a reconnect.
 * - Dead-letter queues are always read-only: a dead letter is retried or discarded through the
 *   worker (`changeq dlq retry|discard --worker <name> --job <id>`), which keeps the document's order and its block. Removing
 *   or editing it here would leave the document blocked behind a job that no longer exists.
 * - Event queues allow only what can neither lose an event nor reorder one: pausing and resuming,
 *   and cleaning or removing jobs that are already completed or failed. Retrying (it re-runs an
 *   old event after newer events of its document), adding or duplicating a job, editing its data
 *   (the form holds the readable form of the event, not the stored encoding), promoting, removing
 *   waiting or active events, emptying and obliterating are refused with 403 and the reason.
 * - `BOARD_READ_ONLY=true`: every queue is in Bull Board's read-only mode (405).
 */
import type {
  BeforeHook,
  BeforeHookResult,
  HTTPStatus,
  HookContext,
} from '@bull-board/api/typings/app';

export type QueueKind = 'events' | 'dead';

export interface GuardOptions {
  /** Why Redis cannot be used right now, or undefined when it is connected. */
  redisProblem(): string | undefined;
  /** Which changeq queue a Bull Board queue name is, if any. */
  kindOf(queueName: string): { kind: QueueKind; worker: string } | undefined;
  readOnly: boolean;
}

/** Mutating routes an event queue accepts (Bull Board's route patterns). */
const PAUSE_ROUTES = new Set([
  '/api/queues/pause',
  '/api/queues/resume',
  '/api/queues/:queueName/pause',
  '/api/queues/:queueName/resume',
]);
const FINISHED = new Set(['completed', 'failed']);

const refuse = (
  status: 403 | 405 | 503,
  errorKey: 'ERRORS.FORBIDDEN' | 'ERRORS.QUEUE_READ_ONLY' | 'ERRORS.REDIS_UNAVAILABLE',
  message: string,
): BeforeHookResult => ({
  allow: false,
  // Bull Board's type lists the statuses its own handlers use; Express sends any status it gets.
  status: status as HTTPStatus,
  errorKey,
  message,
});

async function eventQueueRule(context: HookContext, worker: string): Promise<string | undefined> {
  const { route, request } = context;
  const params = request.params as Record<string, string | undefined>;
  if (PAUSE_ROUTES.has(route)) return undefined;
  if (route === '/api/queues/:queueName/clean/:queueStatus') {
    if (FINISHED.has(params.queueStatus ?? '')) return undefined;
    return `cleaning ${params.queueStatus ?? 'these'} jobs would drop change events that have not run; only completed and failed jobs can be cleaned`;
  }
  if (route === '/api/queues/:queueName/:jobId/clean') {
    const queue = request.queues.get(params.queueName ?? '');
    const job = await queue?.getJob(params.jobId ?? '');
    const state = job ? await job.getState() : undefined;
    if (state === undefined || FINISHED.has(state)) return undefined; // Bull Board answers 404
    return `job ${params.jobId ?? ''} is ${state}: removing it would drop a change event that has not run. A failing event becomes a dead letter: discard it with changeq dlq discard --worker ${worker} --job <id>`;
  }
  if (/\/retry(\/|$)/.test(route)) {
    return `retrying an event from Bull Board would run it after newer events of its document. Failed events are retried by the worker, then kept as dead letters: retry them with changeq dlq retry --worker ${worker} --job <id>`;
  }
  if (route.endsWith('/add')) {
    return 'adding or duplicating a job in an event queue is refused: only the ingest enqueues change events, in oplog order';
  }
  if (route.endsWith('/update-data')) {
    return 'editing the data of a change event is refused: the board shows a readable form of the event, not its stored encoding';
  }
  return 'this action could drop or reorder change events, so the board refuses it on event queues (see docs/board.md)';
}

export function createGuard(options: GuardOptions): BeforeHook {
  return async (context) => {
    const problem = options.redisProblem();
    if (problem !== undefined) return refuse(503, 'ERRORS.REDIS_UNAVAILABLE', problem);
    if (context.method === 'get') return undefined;
    if (options.readOnly) {
      return refuse(
        405,
        'ERRORS.QUEUE_READ_ONLY',
        'the board runs read-only (BOARD_READ_ONLY=true)',
      );
    }
    const queueName = (context.request.params as Record<string, string | undefined>).queueName;
    if (queueName === undefined) return undefined; // pause all, resume all: read-only queues are skipped
    const queue = options.kindOf(queueName);
    if (queue === undefined) return undefined; // not a changeq queue: Bull Board answers 404
    if (queue.kind === 'dead') {
      const w = queue.worker;
      const jobId = (context.request.params as Record<string, string | undefined>).jobId;
      const how =
        jobId === undefined
          ? `changeq dlq list --worker ${w}, then changeq dlq retry (or discard) --worker ${w} --job <id>, or --all`
          : `changeq dlq retry --worker ${w} --job ${jobId}, or changeq dlq discard --worker ${w} --job ${jobId}`;
      return refuse(
        405,
        'ERRORS.QUEUE_READ_ONLY',
        `dead letters are retried and discarded through the worker, which keeps each document's order: ${how}`,
      );
    }
    const reason = await eventQueueRule(context, queue.worker);
    return reason === undefined ? undefined : refuse(403, 'ERRORS.FORBIDDEN', reason);
  };
}
