/**
 * OpenTelemetry tracing, on only when the standard `OTEL_*` variables ask for an exporter
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_TRACES_EXPORTER=otlp):
 * otherwise `startTracing` returns null and the processes create no span and add nothing to
 * the jobs. The OTLP/HTTP exporter and the batch processor read their own variables
 * (OTEL_EXPORTER_OTLP_PROTOCOL, _HEADERS, OTEL_BSP_*, OTEL_TRACES_SAMPLER, ...).
 *
 * An event's spans are linked across the queue by a W3C `traceparent` carried in its job's data
 * (the ingest's enqueue span); BullMQ's own telemetry (`bullmq-otel`) propagates through
 * `Queue.add` and its worker's processor, neither of which changeq uses.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';

export { SpanKind, SpanStatusCode, type Span, type Tracer };

/** Whether the environment asks for traces. */
export function tracingEnabled(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((e) => e.trim());
  if (exporters.includes('none')) return false;
  return (
    exporters.includes('otlp') ||
    Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT) ||
    Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
  );
}

export interface Tracing {
  tracer: Tracer;
  /** Sends the spans still buffered; call before the process exits. */
  shutdown(): Promise<void>;
}

/**
 * Starts the SDK when asked (`service`: the default of OTEL_SERVICE_NAME). It is registered
 * globally, so spans a handler makes with @opentelemetry/api nest under its handler span.
 */
export async function startTracing(
  service: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Tracing | null> {
  if (!tracingEnabled(env)) return null;
  // Loaded only when asked: without OTEL_* the SDK costs not even its loading.
  const [{ OTLPTraceExporter }, resources, { BatchSpanProcessor }, { NodeTracerProvider }] =
    await Promise.all([
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/sdk-trace-base'),
      import('@opentelemetry/sdk-trace-node'),
    ]);
  const { detectResources, envDetector, resourceFromAttributes } = resources;
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (the env detector) win over the default name.
  const resource = resourceFromAttributes({ 'service.name': service }).merge(
    detectResources({ detectors: [envDetector] }),
  );
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  provider.register();
  return { tracer: provider.getTracer('changeq'), shutdown: () => provider.shutdown() };
}

/** The W3C traceparent of a span, for a job's data. */
export function traceparentOf(span: Span): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier);
  return carrier.traceparent;
}

/** The context a job's traceparent names (the root context without one). */
export function contextOf(traceparent: string | undefined): Context {
  if (traceparent === undefined) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, { traceparent });
}

/** `span` as the active span of `parent`, for children and for code that reads the active span. */
export function withSpan(parent: Context, span: Span): Context {
  return trace.setSpan(parent, span);
}

/** Runs `fn` with `ctx` active (spans a handler starts become children of its span). */
export function runWithin<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}
