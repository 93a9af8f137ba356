#!/usr/bin/env node
import { createLogger, runMain } from '@changeq/shared';
import { USAGE, loadConfig, parseFlags } from './config.js';
import { Ingest } from './ingest.js';

runMain('changeq-ingest', async () => {
  const flags = parseFlags(process.argv.slice(2));
  if (flags.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const config = loadConfig(process.env, flags);
  const log = createLogger({ name: 'ingest' });
  const ingest = new Ingest(config, log);

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

  try {
    await ingest.start();
  } finally {
    await ingest.close();
  }
  log.info('stopped');
});
