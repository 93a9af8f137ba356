/**
 * A handler (or a library it uses) that calls `process.exit()` would end the worker at once:
 * without a word, with exit code 0, and with its lease still held, so `changeq status` would list
 * a dead process as active until the lease expired. While the worker runs, `process.exit` is
 * replaced: the call is logged with where it came from, the worker stops gracefully (handlers
 * finish or are aborted, the lease is released) and the process exits with code 1. The call
 * itself throws, so the handler does not go on as if the process had ended, and its event is not
 * completed: it runs again in the next process.
 */
import type { Logger } from '@changeq/shared';

export interface ExitGuard {
  /** The real `process.exit`, for the worker's own deliberate exits. */
  exit: (code?: number) => never;
  /** Puts the real `process.exit` back. */
  restore(): void;
}

export function guardProcessExit(log: Logger, stop: () => Promise<void>): ExitGuard {
  const real = process.exit.bind(process) as (code?: number) => never;
  let called = false;
  const guarded = (code?: number | string | null): never => {
    const error = new Error(`process.exit(${code ?? ''}) was called while the worker was running`);
    if (called) throw error; // already stopping because of an earlier call
    called = true;
    const caller = new Error().stack?.split('\n').slice(2, 5).join(' | ').trim();
    log.error(
      { code: code ?? null, caller },
      'process.exit() was called while the worker was running (by a handler or a library it uses): stopping gracefully, releasing the lease, exiting with code 1',
    );
    void stop().finally(() => real(1));
    // The caller expects no code after it to run: throwing ends the handler call (its attempt
    // fails and the event runs again in the next process) instead of completing the event.
    throw error;
  };
  process.exit = guarded as typeof process.exit;
  return {
    exit: real,
    restore() {
      if (process.exit === (guarded as typeof process.exit)) process.exit = real;
    },
  };
}
