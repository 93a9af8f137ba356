/** @changeq/observability: Prometheus metrics and the /metrics, /healthz, /readyz server. */
export { createRegistry, METRIC_PREFIX } from './registry.js';
export {
  startHttpServer,
  evaluateReadiness,
  withTimeout,
  type HttpServerOptions,
  type RunningHttpServer,
  type Readiness,
  type ReadinessCheck,
} from './server.js';
export { QueueCounts, registerQueueMetrics, type QueueCountsOptions } from './queue-counts.js';
export {
  createIngestMetrics,
  namespaceLabel,
  INGEST_STATES,
  INGEST_READY_STATES,
  type IngestMetrics,
  type IngestMetricsOptions,
  type IngestStatusLike,
  type EventLike,
  type EventTally,
  type ClusterTimeLike,
} from './ingest-metrics.js';
export {
  createWorkerMetrics,
  jobIdOf,
  WORKER_STATES,
  HANDLER_BUCKETS,
  type WorkerMetrics,
  type WorkerMetricHooks,
  type WorkerMetricsOptions,
} from './worker-metrics.js';
export { httpSettings, type HttpSettings } from './settings.js';
export { registerWorkerLeaseMetrics, type WorkerLeasesOptions } from './worker-leases.js';
export { metricsRedis, serveObservability, type ServeOptions } from './serve.js';
export {
  startTracing,
  tracingEnabled,
  traceparentOf,
  contextOf,
  withSpan,
  runWithin,
  SpanKind,
  SpanStatusCode,
  type Tracing,
  type Tracer,
  type Span,
} from './tracing.js';
