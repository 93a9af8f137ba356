import { Registry, collectDefaultMetrics } from 'prom-client';

/** Every changeq metric name starts with this. */
export const METRIC_PREFIX = 'changeq_';

/**
 * A registry of its own (never prom-client's global one, so two instrumented components in one
 * process or one test cannot collide) with Node's default process metrics, `changeq_`-prefixed:
 * `changeq_process_cpu_seconds_total`, `changeq_nodejs_eventloop_lag_seconds`, ...
 */
export function createRegistry(options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  }
  return registry;
}
