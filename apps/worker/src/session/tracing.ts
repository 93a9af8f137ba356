/**
 * The worker's spans (with OTEL_* set, see @changeq/observability's tracing.ts), children of the
 * ingest's enqueue span named by the job's `traceparent`: `changeq.wait` (from the job's enqueue
 * to its first handler call) and `changeq.handler` (each call, active while the handler runs).
 */
import {
  SpanKind,
  SpanStatusCode,
  contextOf,
  runWithin,
  withSpan,
  type Span,
  type Tracer,
} from '@changeq/observability';
import type { RunTask } from './tasks.js';

export function tracedCall(
  tracer: Tracer,
  worker: string,
  task: RunTask,
  attempt: number,
  call: () => unknown,
): unknown {
  const data = task.kind === 'event' ? task.data : undefined;
  const parent = contextOf(data?.traceparent);
  const attributes = {
    'messaging.system': 'bullmq',
    'changeq.worker': worker,
    'changeq.job_id': task.jobId,
    'changeq.ns': data?.ns ?? '',
    'changeq.op': data?.op ?? '',
  };
  if (task.kind === 'event' && attempt === 1 && task.job.timestamp > 0) {
    tracer
      .startSpan(
        'changeq.wait',
        { kind: SpanKind.INTERNAL, startTime: task.job.timestamp, attributes },
        parent,
      )
      .end();
  }
  const span = tracer.startSpan(
    'changeq.handler',
    { kind: SpanKind.CONSUMER, attributes: { ...attributes, 'changeq.attempt': attempt } },
    parent,
  );
  let result: unknown;
  try {
    result = runWithin(withSpan(parent, span), call);
  } catch (error) {
    failed(span, error);
    throw error;
  }
  if (result instanceof Promise) {
    result.then(
      () => span.end(),
      (error: unknown) => failed(span, error),
    );
  } else {
    span.end();
  }
  return result;
}

function failed(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: error instanceof Error ? error.message : String(error),
  });
  span.end();
}
