/**
 * The board: Bull Board over the event queue and the dead-letter queue of every worker name in
 * workers.toml, served by Express, following the file as it changes.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { ExpressAdapter } from '@bull-board/express';
import express from 'express';
import type { Redis } from 'ioredis';
import {
  UserError,
  formatUserError,
  redactUri,
  type Logger,
  type WorkersConfig,
} from '@changeq/shared';
import {
  checkRedisDatabase,
  createRedis,
  describeRedisFailure,
  redisStartupError,
} from '@changeq/store';
import { basicAuth } from './auth.js';
import type { BoardConfig } from './config.js';
import { createGuard } from './guard.js';
import { QueueRegistry } from './queues.js';
import { watchWorkersFile } from '@changeq/shared';

export interface Board {
  /** The board's address, e.g. `http://127.0.0.1:3000/`. */
  readonly url: string;
  readonly port: number;
  /** The worker names shown now. */
  workers(): string[];
  /** Closes the HTTP server, the file watcher and the Redis connection. */
  close(): Promise<void>;
}

export interface StartBoardOptions {
  log: Logger;
  /** workers.toml as read at start (the caller reports a broken file as a start-up error). */
  workers: WorkersConfig;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '[::1]';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

async function listen(app: express.Express, config: BoardConfig): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(config.port, config.host);
    server.once('listening', () => resolve(server));
    server.once('error', (error: NodeJS.ErrnoException) => {
      const where = `${config.host}:${config.port}`;
      if (error.code === 'EADDRINUSE') {
        reject(
          new UserError(
            `port ${config.port} on ${config.host} is already in use`,
            `stop what listens on ${where} or set BOARD_PORT to a free port`,
          ),
        );
      } else if (error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND') {
        reject(
          new UserError(
            `BOARD_HOST=${JSON.stringify(config.host)} is not an address of this machine`,
            'set BOARD_HOST to one of its addresses (127.0.0.1, or 0.0.0.0 for all), or unset it',
          ),
        );
      } else if (error.code === 'EACCES') {
        reject(
          new UserError(
            `not allowed to listen on ${where}`,
            'set BOARD_PORT to a port above 1023, or run with the privilege to bind it',
          ),
        );
      } else {
        reject(error);
      }
    });
  });
}

/** How long the board waits for Redis before it listens anyway. */
const FIRST_CONNECTION_WAIT_MS = 3000;

/** Resolves when the client is ready, its first attempt failed, or `timeoutMs` passed. */
function firstConnection(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      redis.off('ready', done);
      redis.off('error', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    redis.once('ready', done);
    redis.once('error', done);
  });
}

export async function startBoard(config: BoardConfig, options: StartBoardOptions): Promise<Board> {
  const { log } = options;
  const shownRedis = redactUri(config.redisUrl);

  // One connection for every queue. Commands fail at once while it is down (no offline queue),
  // and the guard answers 503 meanwhile; ioredis keeps reconnecting, so the board recovers alone.
  const redis = createRedis(config.redisUrl, { role: 'board' });
  let closing = false;
  let lastError: string | undefined;
  let state: 'connecting' | 'up' | 'down' = 'connecting';
  /** A setting to correct met on the first connection: the board then refuses to start. */
  let refused: Error | undefined;
  redis.on('error', (error: Error) => {
    lastError = error.message;
    if (state === 'connecting' && describeRedisFailure(error, config.redisUrl).permanent) {
      refused ??= error;
      return;
    }
    if (state !== 'down' && !closing) {
      log.warn(
        { redisUrl: shownRedis, err: error.message },
        'cannot reach Redis: the board answers 503 (REDIS_UNAVAILABLE) until it is back; retrying',
      );
    }
    state = 'down';
  });
  redis.on('close', () => {
    if (state === 'up' && !closing) {
      log.warn({ redisUrl: shownRedis }, 'lost the connection to Redis; reconnecting');
      state = 'down';
    }
  });
  redis.on('ready', () => {
    if (refused !== undefined) return; // not a usable connection: the board is about to stop
    log.info(
      { redisUrl: shownRedis },
      state === 'down' ? 'Redis is reachable again' : 'connected to Redis',
    );
    state = 'up';
    lastError = undefined;
  });

  const registry = new QueueRegistry({ redis, prefix: config.prefix, readOnly: config.readOnly });
  registry.update(options.workers.names);

  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(config.basePath);
  const board = createBullBoard({
    queues: registry.adapters,
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: config.readOnly ? 'changeq (read-only)' : 'changeq',
        jobDetails: { defaultTab: 'Data' },
      },
      handlerHooks: {
        before: createGuard({
          readOnly: config.readOnly,
          kindOf: (name) => registry.kindOf(name),
          redisProblem: () => {
            if (redis.status === 'ready') return undefined;
            if (state === 'connecting') return `connecting to Redis at ${shownRedis}`;
            return `cannot reach Redis at ${shownRedis}${lastError === undefined ? '' : ` (${lastError})`}; the board retries and shows the queues once it is back`;
          },
        }),
      },
    },
  });

  const app = express();
  app.disable('x-powered-by');
  if (config.credentials !== undefined) app.use(basicAuth(config.credentials));
  if (config.basePath !== '/') {
    app.get('/', (_req, res) => res.redirect(`${config.basePath}/`));
  }
  app.use(config.basePath, serverAdapter.getRouter() as express.Router);

  const watcher = watchWorkersFile(config.workersFile, readFileSync(config.workersFile, 'utf8'), {
    onChange: (workers) => {
      const { added, removed } = registry.update(workers.names);
      // Emptied and refilled (synchronously, no request sees the gap) so the board lists the
      // queues in the file's order; replaceQueues alone would append new names at the end.
      board.replaceQueues([]);
      board.setQueues(registry.adapters);
      log.info(
        { file: config.workersFile, workers: workers.names, added, removed },
        added.length + removed.length === 0
          ? 'workers file read again: the same workers'
          : 'workers file changed: queues updated',
      );
    },
    onError: (error) => {
      log.error(
        { file: config.workersFile, line: error.line, workers: registry.workers },
        `workers file not applied, keeping the last good set of queues: ${formatUserError(error)}`,
      );
    },
  });

  // Listen once Redis answered (or refused) the first connection, so that a board that says it
  // is listening shows the queues; an unreachable Redis does not hold the board back.
  await firstConnection(redis, FIRST_CONNECTION_WAIT_MS);

  let server: Server;
  try {
    // A wrong password, permission, certificate or database number is not an outage to wait
    // out behind 503s: the board stops with the one line that says what to correct.
    if (refused !== undefined) throw await redisStartupError(redis, config.redisUrl, refused);
    if (redis.status === 'ready') await checkRedisDatabase(redis, config.redisUrl);
    server = await listen(app, config);
  } catch (error) {
    closing = true;
    watcher.close();
    await registry.close();
    redis.disconnect();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const path = config.basePath === '/' ? '/' : `${config.basePath}/`;
  const url = `http://${urlHost(config.host)}:${port}${path}`;

  let closed: Promise<void> | undefined;
  return {
    url,
    port,
    workers: () => registry.workers,
    close() {
      closed ??= (async () => {
        closing = true;
        watcher.close();
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections(); // the UI's keep-alive connections would hold close() open
        await stopped;
        await registry.close();
        if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
        else redis.disconnect();
      })();
      return closed;
    },
  };
}
