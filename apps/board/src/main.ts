#!/usr/bin/env node
/** `changeq-board`: Bull Board for changeq's queues. Settings come from the environment. */
import { UserError, createLogger, loadWorkersConfig, runMain } from '@changeq/shared';
import { readBoardConfig } from './config.js';
import { startBoard } from './server.js';

const USAGE = `Usage: changeq-board   (npm run board)

Serves Bull Board with the event queue and the dead-letter queue of every worker name in
workers.toml, following the file as it changes. Settings (environment):

  REDIS_URL        required, redis://[user:password@]host:port[/db] or rediss://
  REDIS_TLS_CA, REDIS_TLS_CERT, REDIS_TLS_KEY  PEM files for rediss:// (docs/configuration.md)
  QUEUE_PREFIX     prefix of every Redis key (default changeq)
  WORKERS_FILE     the worker names (default ./workers.toml)
  BOARD_HOST       listen address (default 127.0.0.1; any other needs BOARD_USER/BOARD_PASSWORD)
  BOARD_PORT       listen port (default 3000)
  BOARD_BASE_PATH  path the board is served under (default /)
  BOARD_USER, BOARD_PASSWORD  basic authentication (on whenever set)
  BOARD_READ_ONLY  true: no action buttons at all (default false)
  LOG_LEVEL, LOG_FORMAT       as for every changeq process (logs go to stderr)

See docs/board.md.`;

runMain('changeq-board', async () => {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (args.length > 0) {
    throw new UserError(
      `unexpected argument ${JSON.stringify(args[0])}`,
      'the board takes its settings from the environment; run with --help to list them',
    );
  }
  const config = readBoardConfig(process.env);
  const log = createLogger({ name: 'changeq-board' });
  const workers = loadWorkersConfig(config.workersFile);
  const board = await startBoard(config, { log, workers });
  log.info(
    {
      url: board.url,
      workers: workers.names,
      workersFile: config.workersFile,
      prefix: config.prefix,
      auth: config.credentials === undefined ? 'off' : 'basic',
      readOnly: config.readOnly,
    },
    `Bull Board listening on ${board.url}`,
  );

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    log.info({ signal }, 'shutting down');
    board.close().then(
      () => {
        log.info('stopped');
        process.exitCode = 0;
      },
      (error: unknown) => {
        log.error({ err: error }, 'failed to close cleanly');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
});
