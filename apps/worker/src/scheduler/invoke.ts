/**
 * Calls a handler once: turns everything a handler can do wrong (throw a non-Error, never
 * settle, run past its time limit) into a failure with a readable reason.
 */
import { inspect } from 'node:util';
import { SlotMap } from '@changeq/shared';

export interface HandlerFailure {
  /** One line: the Error's message, or a description of what went wrong. */
  message: string;
  /** The Error's stack when there is one. */
  stack?: string;
  kind: 'error' | 'non-error' | 'timeout';
}

export type InvokeOutcome =
  | { status: 'ok'; value: unknown }
  | { status: 'failed'; failure: HandlerFailure }
  /** The worker is shutting down or lost its lease: the attempt does not count. */
  | { status: 'aborted' };

/**
 * A short, readable rendering of a thrown non-Error value. It never throws itself: a handler may
 * throw anything (an object without a prototype, one whose `toString` or getters throw, a
 * revoked proxy), and a failure to describe it must not crash the worker on every attempt.
 */
export function describeThrown(value: unknown): string {
  const text = firstRendering(value, [
    (v) => (typeof v === 'string' ? JSON.stringify(v) : undefined),
    (v) => (v === undefined ? 'undefined' : undefined),
    (v) => (typeof v === 'bigint' ? `${v}n` : undefined),
    (v) => (typeof v === 'symbol' || typeof v === 'function' ? String(v) : undefined),
    (v) => JSON.stringify(v),
    (v) => inspect(v, { depth: 2, breakLength: Infinity, maxStringLength: 200 }),
    (v) => Object.prototype.toString.call(v),
  ]);
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

function firstRendering(value: unknown, renderers: ((v: unknown) => string | undefined)[]) {
  for (const render of renderers) {
    try {
      const text = render(value);
      if (typeof text === 'string') return text;
    } catch {
      // this rendering threw (a getter, a toJSON, a proxy trap): try the next one
    }
  }
  return 'a value that cannot be described';
}

export function failureFromThrown(thrown: unknown): HandlerFailure {
  try {
    if (thrown instanceof Error) {
      const message = String(thrown.message || thrown.name || 'Error');
      const stack = thrown.stack;
      return typeof stack === 'string'
        ? { message, stack, kind: 'error' }
        : { message, kind: 'error' };
    }
  } catch {
    // an Error subclass whose message, name or stack getter throws: described as a value
  }
  return {
    message: `handler threw a non-Error value: ${describeThrown(thrown)}`,
    kind: 'non-error',
  };
}

/**
 * A cheap stop signal for many concurrent calls: subscribing is a map insertion, not an
 * EventTarget listener per call. A SlotMap, not a Set: a Set's replaced tables kept finished
 * calls' listeners, and through them their tasks, reachable (see SlotMap).
 */
export class StopSource {
  private readonly listeners = new SlotMap<number, () => void>();
  private nextId = 0;
  private reasonValue: unknown;
  stopped = false;

  get reason(): unknown {
    return this.reasonValue;
  }

  stop(reason: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.reasonValue = reason;
    for (const listener of [...this.listeners.values()]) listener();
    this.listeners.clear();
  }

  subscribe(listener: () => void): () => void {
    const id = this.nextId++;
    this.listeners.set(id, listener);
    return () => this.listeners.delete(id);
  }
}

/**
 * Runs `call(signal)` with a time limit. `stop` aborts the call for shutdown or lease loss; the
 * signal handed to the handler fires on either. It is created only when the handler asks for it
 * (`getSignal`), so handlers that ignore it cost no AbortController. A handler that never
 * settles is abandoned (there is no way to cancel a promise): after a timeout, it counts as
 * failed; after `stop`, as aborted.
 */
export function invokeWithTimeout(
  call: (getSignal: () => AbortSignal) => unknown,
  timeoutMs: number,
  stop: StopSource,
): Promise<InvokeOutcome> {
  if (stop.stopped) return Promise.resolve({ status: 'aborted' });
  let controller: AbortController | undefined;
  let abortReason: unknown;
  let aborted = false;
  const abort = (reason: unknown) => {
    aborted = true;
    abortReason = reason;
    controller?.abort(reason);
  };
  const getSignal = () => {
    if (controller === undefined) {
      controller = new AbortController();
      if (aborted) controller.abort(abortReason);
    }
    return controller.signal;
  };
  return new Promise<InvokeOutcome>((resolve) => {
    let settled = false;
    const finish = (outcome: InvokeOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      unsubscribe();
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      const message = `handler timed out after ${timeoutMs} ms`;
      abort(new Error(message));
      finish({ status: 'failed', failure: { message, kind: 'timeout' } });
    }, timeoutMs);
    const unsubscribe = stop.subscribe(() => {
      abort(stop.reason);
      finish({ status: 'aborted' });
    });
    let result: unknown;
    try {
      result = call(getSignal);
    } catch (thrown) {
      finish({ status: 'failed', failure: failureFromThrown(thrown) });
      return;
    }
    if (
      result instanceof Promise ||
      (typeof result === 'object' && result !== null && 'then' in result)
    ) {
      Promise.resolve(result).then(
        (value) => finish({ status: 'ok', value }),
        (thrown: unknown) => finish({ status: 'failed', failure: failureFromThrown(thrown) }),
      );
    } else {
      finish({ status: 'ok', value: result });
    }
  });
}
