/**
 * The ingest's spans (with OTEL_* set, see @changeq/observability's tracing.ts): per batch of
 * events, `changeq.read` (waiting for and reading the batch) and its child `changeq.enqueue`
 * (committing the jobs and storing the position). Every job of the batch carries the enqueue
 * span's W3C traceparent in its data, which the worker's spans take as their parent.
 */
import {
  SpanKind,
  SpanStatusCode,
  contextOf,
  traceparentOf,
  withSpan,
  type Span,
  type Tracer,
} from '@changeq/observability';
import type { ReadBatch } from './ports.js';

export class IngestTracing {
  constructor(private readonly tracer: Tracer) {}

  /**
   * Before a commit: the batch's read span (from `readFrom` to `readTo`, ms since the epoch),
   * and the enqueue span, started, its traceparent written into every job. Null for a batch
   * without events (a quiet stream's empty reads make no spans).
   */
  enqueueing(batch: ReadBatch, readFrom: number, readTo: number): Span | null {
    if (batch.count === 0 || batch.jobs.length === 0) return null;
    const read = this.tracer.startSpan('changeq.read', {
      kind: SpanKind.CONSUMER,
      startTime: readFrom,
      attributes: { 'changeq.events': batch.count },
    });
    read.end(readTo);
    const enqueue = this.tracer.startSpan(
      'changeq.enqueue',
      {
        kind: SpanKind.PRODUCER,
        attributes: { 'messaging.system': 'bullmq', 'changeq.jobs': batch.jobs.length },
      },
      withSpan(contextOf(undefined), read),
    );
    const traceparent = traceparentOf(enqueue);
    if (traceparent !== undefined) {
      const field = `{"traceparent":${JSON.stringify(traceparent)},`;
      // The job data is a JSON object (EventJobData): the field goes first, the rest unchanged.
      for (const job of batch.jobs) {
        if (job.json.startsWith('{"')) job.json = field + job.json.slice(1);
      }
    }
    return enqueue;
  }

  /** The commit ended (`error`: it failed). */
  committed(span: Span | null, error?: unknown): void {
    if (span === null) return;
    if (error !== undefined) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
    }
    span.end();
  }
}
