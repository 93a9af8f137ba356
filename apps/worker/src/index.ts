/**
 * @changeq/worker as a library: the worker itself (startWorker, handler loading), and the
 * operator API for dead letters documented in docs/handlers.md (it lives in @changeq/store,
 * where `changeq dlq` takes it from too).
 */
export {
  listDeadLetters,
  retryDeadLetter,
  discardDeadLetter,
  type DeadLetterTarget,
  type DeadLetterEntry,
  type DeadLetterInfo,
  type DeadLetterJobData,
  type CommandReceipt,
  type Selection,
  type BlockState,
} from '@changeq/store';
export {
  startWorker,
  defaultPrefetch,
  type WorkerOptions,
  type RunningWorker,
  type WorkerState,
} from './runner.js';
export type { AttemptProgress } from './session/attempts.js';
export type { SchedulerHooks, HookJob } from './scheduler/hooks.js';
export type { WorkerHooks, RedisOperation, ReclaimResult } from './hooks.js';
export type { HandlerFailure } from './scheduler/invoke.js';
export {
  loadHandlers,
  dispatcherFor,
  type Dispatch,
  type LoadedHandlers,
} from './handlers/load.js';
export { resolveHandler } from './handlers/resolve.js';
