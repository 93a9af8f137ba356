#!/usr/bin/env node
/** `changeq-worker --name <worker>`: see cli.ts for the flags and docs/handlers.md for the rest. */
import {
  createRegistry,
  createWorkerMetrics,
  evaluateReadiness,
  metricsRedis,
  serveObservability,
  startTracing,
  withTimeout,
  type WorkerMetrics,
} from '@changeq/observability';
import { createLogger, runMain, type Logger } from '@changeq/shared';
import {
  RingStore,
  createRedis,
  deadLetterQueueName,
  eventQueueName,
  readWorkerRecord,
} from '@changeq/store';
import { parseCli, USAGE, type CliConfig } from './cli.js';
import { guardProcessExit } from './exit-guard.js';
import { loadHandlers } from './handlers/load.js';
import { startWorker, type RunningWorker } from './runner.js';

runMain('changeq-worker', async () => {
  try {
    await main();
  } catch (error) {
    // A handlers module may hold connections open: leave once runMain has printed the error.
    setTimeout(() => process.exit(), 200).unref();
    throw error;
  }
});

/**
 * A name missing from workers.toml runs only if the stored ring has known it: it was removed and
 * its process (restarted, say after a crash) must drain its queue. Anything else is a typo.
 */
async function mayDrain(config: CliConfig, refusal: Error, log: Logger): Promise<void> {
  const redis = createRedis(config.redisUrl, { role: 'worker', worker: config.worker });
  redis.on('error', () => undefined);
  try {
    const epochs = await new RingStore(redis, config.prefix).load();
    if (!epochs?.some((epoch) => epoch.names.includes(config.worker))) throw refusal;
  } finally {
    redis.disconnect();
  }
  log.warn(
    { worker: config.worker },
    'this name is not in workers.toml but was in the ring: running with the default settings to drain its queue',
  );
}

async function main(): Promise<void> {
  const config = parseCli(process.argv.slice(2), process.env);
  if (config.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const log = createLogger({ name: 'changeq-worker', level: config.logLevel });
  if (config.notInFile) await mayDrain(config, config.notInFile, log);
  // Before the handlers load: spans they make with @opentelemetry/api nest under ours.
  const tracing = await startTracing('changeq-worker');
  const handlers = await loadHandlers(config.handlers);
  let worker: RunningWorker | undefined;
  const observability = config.http.port === 0 ? null : await serve(config, () => worker, log);
  try {
    worker = await startWorker({
      worker: config.worker,
      redisUrl: config.redisUrl,
      prefix: config.prefix,
      settings: config.settings,
      dispatch: observability
        ? observability.metrics.wrapDispatch(handlers.dispatch)
        : handlers.dispatch,
      hooks: observability ? [observability.metrics.hooks] : [],
      log,
      prefetch: config.prefetch,
      leaseTtlMs: config.leaseTtlMs,
      lockDurationMs: config.lockDurationMs,
      connectTimeoutMs: config.connectTimeoutMs,
      ...(tracing ? { tracer: tracing.tracer } : {}),
    });
  } catch (error) {
    await observability?.close();
    await tracing?.shutdown().catch(() => undefined);
    throw error;
  }
  log.info(
    {
      worker: config.worker,
      handlers: handlers.file,
      ...config.settings,
      prefetch: config.prefetch,
    },
    'worker started',
  );

  const running = worker;
  const guard = guardProcessExit(log, () => running.stop(config.shutdownTimeoutMs));
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn(
        { signal },
        'second signal: exiting now (jobs in flight run again in the next process)',
      );
      guard.exit(130);
    }
    log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down: no new jobs');
    void worker.stop(config.shutdownTimeoutMs);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  await worker.done;
  guard.restore();
  await observability?.close();
  await tracing
    ?.shutdown()
    .catch((error: unknown) => log.warn({ err: error }, 'sending the last spans failed'));
  await handlers
    .close()
    .catch((error: unknown) => log.warn({ err: error }, 'the handlers module failed to close'));
  log.info('stopped');
  // Handlers that ignore their abort signal may keep timers alive: exit regardless.
  setTimeout(() => process.exit(0), 200).unref();
}

/** /metrics, /healthz and /readyz of this worker process (HTTP_PORT / --http-port). */
async function serve(
  config: CliConfig,
  worker: () => RunningWorker | undefined,
  log: Logger,
): Promise<{ metrics: WorkerMetrics; close(): Promise<void> }> {
  const registry = createRegistry();
  const redis = metricsRedis(config.redisUrl, { role: 'worker', worker: config.worker }, log);
  const metrics = createWorkerMetrics({
    registry,
    worker: config.worker,
    state: () => worker()?.state,
    extra: async () => {
      const { blockedDocuments, pendingCommands } = await withTimeout(
        readWorkerRecord(redis, config.prefix, config.worker),
        2000,
        'reading the blocked documents',
      );
      return { blockedDocuments, pendingCommands };
    },
  });
  const served = await serveObservability({
    http: config.http,
    registry,
    redis,
    prefix: config.prefix,
    queues: [eventQueueName(config.worker), deadLetterQueueName(config.worker)],
    log,
    liveness: () => {
      const stuck = worker()?.stuck();
      return stuck === undefined
        ? { ok: true, detail: 'making progress' }
        : { ok: false, detail: stuck };
    },
    readiness: () => {
      const current = worker();
      return evaluateReadiness({
        redis: () =>
          current?.redisReady
            ? { ok: true, detail: 'connected' }
            : { ok: false, detail: current ? 'connection lost; reconnecting' : 'connecting' },
        lease: async () => {
          if (current?.leaseValid) return { ok: true, detail: 'held: this process runs the jobs' };
          const holder = current?.redisReady
            ? await withTimeout(current.leaseHolder(), 2000, 'reading the lease').catch(
                () => undefined,
              )
            : undefined;
          const state = current?.state ?? 'connecting';
          return {
            ok: false,
            detail: holder
              ? `${state}: held by pid ${holder.pid} on ${holder.host} since ${holder.startedAt}`
              : `${state}: not held`,
          };
        },
      });
    },
  });
  return { metrics, close: () => served.close() };
}
