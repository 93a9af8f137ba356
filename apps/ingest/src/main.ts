#!/usr/bin/env node
import {
  INGEST_READY_STATES,
  createIngestMetrics,
  createRegistry,
  evaluateReadiness,
  httpSettings,
  metricsRedis,
  registerWorkerLeaseMetrics,
  serveObservability,
  startTracing,
  type HttpSettings,
  type Tracer,
} from '@changeq/observability';
import {
  createLogger,
  runMain,
  watchWorkersFile,
  loadWorkersConfig,
  routingSpec,
  UserError,
  type Logger,
  type WorkersConfig,
} from '@changeq/shared';
import { readFileSync } from 'node:fs';
import {
  PauseWatch,
  PositionStore,
  RingStore,
  checkRedisDatabase,
  createRedis,
  deadLetterQueueName,
  eventQueueName,
  ingestKeys,
} from '@changeq/store';
import {
  USAGE,
  describeScope,
  ingestEnqueuer,
  loadConfig,
  parseFlags,
  type IngestConfig,
} from '@changeq/source';
import { faultPoint } from './fault-points.js';
import { Ingest } from './ingest.js';
import { Leadership } from './leadership.js';
import { StreamReader } from './reader/stream-reader.js';

/** How often the ingest reads the pause flag (at a batch boundary, or while paused). */
const PAUSE_POLL_MS = 500;

/** An Ingest of the real parts: the reader thread, and the store over the ingest's connection. */
function createIngest(
  config: IngestConfig,
  reader: StreamReader,
  log: Logger,
  tracer: Tracer | undefined,
): Ingest {
  const redis = createRedis(config.redisUrl, { role: 'ingest', ingestId: config.ingestId });
  redis.on('error', (error) => log.debug({ err: error }, 'redis connection error'));
  const store = new PositionStore(redis, config.queuePrefix, config.ingestId);
  // Measurement only (the A/B of fencing's cost, docs/scaling.md): one ingest, no lease, no
  // fence, as before standby ingests. Never for production: two such ingests both stream.
  const fenced = process.env.CHANGEQ_BENCH_UNFENCED !== '1';
  if (!fenced)
    log.warn('CHANGEQ_BENCH_UNFENCED=1: no lease and no fencing (for measurements only)');
  const enqueuer = ingestEnqueuer(config, redis, log, () => faultPoint('after-queue-commit'), {
    fenced,
  });
  const ring = new RingStore(redis, config.queuePrefix);
  const keys = ingestKeys(config.queuePrefix, config.ingestId);
  return new Ingest(
    config,
    {
      reader,
      redis,
      store,
      enqueuer,
      ring,
      pause: new PauseWatch(
        redis,
        config.queuePrefix,
        { kind: 'ingest', id: config.ingestId },
        PAUSE_POLL_MS,
      ),
      faults: faultPoint,
      ...(tracer ? { tracer } : {}),
      checkRedis: () => checkRedisDatabase(redis, config.redisUrl),
      leadership: fenced && {
        lease: new Leadership({
          redis,
          prefix: config.queuePrefix,
          ingestId: config.ingestId,
          ttlMs: config.leaseTtlMs,
          log,
        }),
        // Every write of a term carries its number: queues and ring raised first, then the token.
        fence: async (fence) => {
          await enqueuer.setFence(fence);
          await ring.setFence(
            fence === null
              ? null
              : { key: keys.ringFence, queueKey: keys.queueFence, value: fence },
          );
          store.setFence(fence);
        },
      },
    },
    log,
  );
}

runMain('changeq-ingest', async () => {
  const flags = parseFlags(process.argv.slice(2));
  if (flags.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  // Without the driver's parse of MONGODB_URI: this thread never loads the driver (about 20 MB);
  // the reader thread, which connects, makes that check and refuses the string the same way.
  const config = loadConfig(process.env, flags, { mongoDriver: false });
  const http = httpSettings({ ...process.env, HTTP_PORT: String(config.httpPort) });
  const log = createLogger({ name: 'ingest' });
  const reader = new StreamReader(config, `changeq-ingest-${config.ingestId}`);
  await reader.started;
  const tracing = await startTracing('changeq-ingest');
  const ingest = createIngest(config, reader, log, tracing?.tracer);
  const observability =
    http.port === 0
      ? null
      : await serve(ingest, config, http, log).catch(async (error: unknown) => {
          await ingest.close(); // its queues hold connections that would keep the process alive
          throw error;
        });

  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      log.warn(
        { signal },
        'second signal: exiting at once (events after the stored token are read again on the next start)',
      );
      process.exit(130);
    }
    signalled = true;
    log.info({ signal }, 'stopping: finishing the enqueue under way and storing the resume token');
    setTimeout(() => {
      log.error(
        { timeoutMs: config.shutdownTimeoutMs },
        'shutdown took too long; exiting (nothing is lost: the stored token is older)',
      );
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    void ingest.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const workers = followWorkersFile(config, ingest, log);

  try {
    await ingest.start();
  } finally {
    workers.close();
    await ingest.close();
    await observability?.close();
    await tracing
      ?.shutdown()
      .catch((error: unknown) => log.warn({ err: error }, 'sending the last spans failed'));
  }
  log.info('stopped');
});

/**
 * workers.toml changes reach the ingest on SIGHUP (the Unix way to say "reload") and through a
 * watch of the file; a broken edit keeps the last good names and logs the problem in one line.
 */
function followWorkersFile(config: IngestConfig, ingest: Ingest, log: Logger): { close(): void } {
  const file = config.workers.file;
  const routing = describeRouting(config.workers);
  const changed = (workers: WorkersConfig, why: string) => {
    // [routing] is read once, at start: changing it re-routes whole namespaces, which no
    // handoff covers (see docs/configuration.md). Say so rather than ignore the edit silently.
    if (describeRouting(workers) !== routing) {
      log.warn(
        { file, why },
        '[routing] changed in workers.toml: not applied while running; it applies at the next start, which re-routes the namespaces it changes (drain their queues first)',
      );
    }
    ingest.requestWorkers(workers.names, why);
  };
  const broken = (error: UserError) =>
    log.error({ file }, `workers.toml not applied, the ring stays as it is: ${error.message}`);
  const onHangup = () => {
    try {
      changed(loadWorkersConfig(file), 'SIGHUP');
    } catch (error) {
      if (error instanceof UserError) broken(error);
      else throw error;
    }
  };
  process.on('SIGHUP', onHangup);
  let initial = '';
  try {
    initial = readFileSync(file, 'utf8');
  } catch {
    // loadConfig read it a moment ago; the watcher reports what happened to it since
  }
  const watcher = watchWorkersFile(file, initial, {
    onChange: (workers) => changed(workers, 'file watch'),
    onError: broken,
    pollMs: 2000,
  });
  return {
    close() {
      process.off('SIGHUP', onHangup);
      watcher.close();
    },
  };
}

/** `[routing]` as one comparable string. */
function describeRouting(workers: WorkersConfig): string {
  return JSON.stringify([...workers.routing].map(([ns, rule]) => [ns, routingSpec(rule)]).sort());
}

/** /metrics, /healthz and /readyz on HTTP_HOST:HTTP_PORT. */
async function serve(
  ingest: Ingest,
  config: IngestConfig,
  http: HttpSettings,
  log: Logger,
): Promise<{ close(): Promise<void> }> {
  const registry = createRegistry();
  const metrics = createIngestMetrics({
    registry,
    status: () => ingest.status,
    ingestId: config.ingestId,
    prefix: config.queuePrefix,
    watch: describeScope(config.watch),
  });
  ingest.on('committed', (batch) => metrics.committed(batch));
  ingest.on('backpressure', (paused) => metrics.backpressure(paused));
  ingest.on('state', (state) => metrics.state(state));

  const redis = metricsRedis(config.redisUrl, { role: 'ingest', ingestId: config.ingestId }, log);
  // Both follow the ring, so names added to workers.toml while running show without a restart.
  registerWorkerLeaseMetrics(registry, {
    redis,
    prefix: config.queuePrefix,
    workers: () => ingest.status.ring?.names ?? config.workers.names,
  });
  return serveObservability({
    http,
    registry,
    redis,
    prefix: config.queuePrefix,
    queues: () =>
      (ingest.status.ring?.everyName ?? config.workers.names).flatMap((name) => [
        eventQueueName(name),
        deadLetterQueueName(name),
      ]),
    log,
    readiness: async () => {
      const servers = await ingest.probe(2000);
      const state = ingest.status.state;
      return evaluateReadiness({
        mongodb: () => ({ ok: servers.mongodb === null, detail: servers.mongodb ?? 'connected' }),
        redis: () => ({ ok: servers.redis === null, detail: servers.redis ?? 'connected' }),
        // Standby ingests: only the leader is ready (a standby waits for the lease).
        ...(ingest.status.leadership
          ? {
              lease: () => {
                const view = ingest.status.leadership!;
                const leader = view.leader;
                return view.role === 'leader'
                  ? { ok: true, detail: `leader (fence ${view.fence})` }
                  : {
                      ok: false,
                      detail: `standby${leader ? `: pid ${leader.pid} on ${leader.host} leads (fence ${leader.fence})` : ''}`,
                    };
              },
            }
          : {}),
        stream: () => ({
          ok: INGEST_READY_STATES.includes(state),
          detail:
            state === 'paused'
              ? 'state paused by the operator (changeq pause --ingest); `changeq resume --ingest` resumes it'
              : `state ${state}${ingest.status.lastError ? ` (${ingest.status.lastError})` : ''}`,
        }),
      });
    },
  });
}
