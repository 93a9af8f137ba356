#!/usr/bin/env node
/** `changeq-worker --name <worker>`: see cli.ts for the flags and docs/handlers.md for the rest. */
import { runMain } from '@changeq/shared';
import { parseCli, USAGE } from './cli.js';
import { loadHandlers } from './handlers/load.js';
import { createLogger } from '@changeq/shared';
import { startWorker } from './runner.js';

runMain('changeq-worker', async () => {
  try {
    await main();
  } catch (error) {
    // A handlers module may hold connections open: leave once runMain has printed the error.
    setTimeout(() => process.exit(), 200).unref();
    throw error;
  }
});

async function main(): Promise<void> {
  const config = parseCli(process.argv.slice(2), process.env);
  if (config.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const log = createLogger({ name: 'changeq-worker', level: config.logLevel });
  const handlers = await loadHandlers(config.handlers);
  const worker = await startWorker({
    worker: config.worker,
    redisUrl: config.redisUrl,
    prefix: config.prefix,
    settings: config.settings,
    dispatch: handlers.dispatch,
    log,
    prefetch: config.prefetch,
    leaseTtlMs: config.leaseTtlMs,
    lockDurationMs: config.lockDurationMs,
    connectTimeoutMs: config.connectTimeoutMs,
  });
  log.info(
    {
      worker: config.worker,
      handlers: handlers.file,
      ...config.settings,
      prefetch: config.prefetch,
    },
    'worker started',
  );

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn(
        { signal },
        'second signal: exiting now (jobs in flight run again in the next process)',
      );
      process.exit(130);
    }
    log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down: no new jobs');
    void worker.stop(config.shutdownTimeoutMs);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  await worker.done;
  await handlers
    .close()
    .catch((error: unknown) => log.warn({ err: error }, 'the handlers module failed to close'));
  log.info('stopped');
  // Handlers that ignore their abort signal may keep timers alive: exit regardless.
  setTimeout(() => process.exit(0), 200).unref();
}
