import { describe, expect, test } from 'vitest';
import { startTracing, tracingEnabled } from '../src/tracing.js';

describe('tracing', () => {
  test('is off without OTEL_* asking for an exporter: no SDK, no span, nothing in the jobs', async () => {
    expect(tracingEnabled({})).toBe(false);
    expect(tracingEnabled({ OTEL_SERVICE_NAME: 'x' })).toBe(false);
    expect(await startTracing('changeq-test', {})).toBeNull();
  });

  test('is on with an OTLP endpoint or OTEL_TRACES_EXPORTER=otlp, off when disabled', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' };
    expect(tracingEnabled(endpoint)).toBe(true);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://h/v1/traces' })).toBe(true);
    expect(tracingEnabled({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(tracingEnabled({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' })).toBe(false);
    expect(tracingEnabled({ ...endpoint, OTEL_SDK_DISABLED: 'true' })).toBe(false);
  });
});
