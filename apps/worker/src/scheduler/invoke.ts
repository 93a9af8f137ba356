/**
 * Calls a handler once: turns everything a handler can do wrong (throw a non-Error, never
 * settle, run past its time limit) into a failure with a readable reason.
 */

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

/** A short, readable rendering of a thrown non-Error value. */
export function describeThrown(value: unknown): string {
  let text: string;
  if (typeof value === 'string') text = JSON.stringify(value);
  else if (value === undefined) text = 'undefined';
  else if (typeof value === 'bigint') text = `${value}n`;
  else if (typeof value === 'symbol' || typeof value === 'function') text = String(value);
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

export function failureFromThrown(thrown: unknown): HandlerFailure {
  if (thrown instanceof Error) {
    const message = thrown.message || thrown.name || 'Error';
    return thrown.stack === undefined
      ? { message, kind: 'error' }
      : { message, stack: thrown.stack, kind: 'error' };
  }
  return {
    message: `handler threw a non-Error value: ${describeThrown(thrown)}`,
    kind: 'non-error',
  };
}

/**
 * Runs `call(signal)` with a time limit. `stop` aborts the call for shutdown or lease loss; the
 * signal handed to the handler fires on either. A handler that never settles is abandoned
 * (there is no way to cancel a promise): after a timeout, it counts as failed; after `stop`,
 * as aborted.
 */
export function invokeWithTimeout(
  call: (signal: AbortSignal) => unknown,
  timeoutMs: number,
  stop: AbortSignal,
): Promise<InvokeOutcome> {
  if (stop.aborted) return Promise.resolve({ status: 'aborted' });
  const controller = new AbortController();
  return new Promise<InvokeOutcome>((resolve) => {
    let settled = false;
    const finish = (outcome: InvokeOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop.removeEventListener('abort', onStop);
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      const message = `handler timed out after ${timeoutMs} ms`;
      controller.abort(new Error(message));
      finish({ status: 'failed', failure: { message, kind: 'timeout' } });
    }, timeoutMs);
    const onStop = () => {
      controller.abort(stop.reason);
      finish({ status: 'aborted' });
    };
    stop.addEventListener('abort', onStop, { once: true });
    let result: unknown;
    try {
      result = call(controller.signal);
    } catch (thrown) {
      finish({ status: 'failed', failure: failureFromThrown(thrown) });
      return;
    }
    Promise.resolve(result).then(
      (value) => finish({ status: 'ok', value }),
      (thrown: unknown) => finish({ status: 'failed', failure: failureFromThrown(thrown) }),
    );
  });
}
