/**
 * The one HTTP server of a changeq process: `/metrics` (Prometheus text), `/healthz` (the process
 * is not stuck: it answers, and its own liveness check passes) and `/readyz` (it does its job
 * right now). node:http only; GET and HEAD.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { UserError, redactText, withinTime, type Logger } from '@changeq/shared';

/** One condition of readiness, e.g. "redis" or "lease". */
export interface ReadinessCheck {
  ok: boolean;
  /** What was seen, for people: "connected", "held by pid 4242 on db-2", "state retrying"... */
  detail: string;
}

export interface Readiness {
  ready: boolean;
  checks: Record<string, ReadinessCheck>;
}

/** Runs the named checks; the process is ready when all of them pass. */
export async function evaluateReadiness(
  checks: Record<string, () => Promise<ReadinessCheck> | ReadinessCheck>,
): Promise<Readiness> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      try {
        return [name, await check()] as const;
      } catch (error) {
        return [name, { ok: false, detail: (error as Error).message }] as const;
      }
    }),
  );
  const result = Object.fromEntries(entries);
  return { ready: entries.every(([, check]) => check.ok), checks: result };
}

/** Rejects after `ms` with `what` unless `promise` settles first. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return withinTime(promise, ms, () => new Error(`${what}: no answer within ${ms} ms`));
}

export interface HttpServerOptions {
  /** 0 picks a free port (the tests do); the caller decides whether to start a server at all. */
  port: number;
  /** Default 127.0.0.1: metrics are not for the whole network unless asked for. */
  host?: string;
  registry: Registry;
  readiness: () => Promise<Readiness>;
  /**
   * Whether the process still makes progress (no step stuck past its deadline). A failing check
   * makes /healthz answer 503, so a supervisor restarts a process that would never recover alone.
   */
  liveness?: () => ReadinessCheck;
  log: Logger;
}

export interface RunningHttpServer {
  readonly port: number;
  readonly host: string;
  /** `http://host:port` */
  readonly url: string;
  close(): Promise<void>;
}

function send(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string,
  head: boolean,
): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(head ? undefined : body);
}

const JSON_TYPE = 'application/json; charset=utf-8';

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  options: HttpServerOptions,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const head = req.method === 'HEAD';
  if (req.method !== 'GET' && !head) {
    res.setHeader('allow', 'GET, HEAD');
    send(res, 405, JSON_TYPE, JSON.stringify({ error: 'only GET and HEAD' }), false);
    return;
  }
  switch (path) {
    case '/metrics': {
      const text = await options.registry.metrics();
      send(res, 200, options.registry.contentType, text, head);
      return;
    }
    case '/healthz': {
      const live = options.liveness?.() ?? { ok: true, detail: 'answering' };
      const body = live.ok
        ? { status: 'ok' }
        : { status: 'stuck', detail: redactText(live.detail) };
      send(res, live.ok ? 200 : 503, JSON_TYPE, JSON.stringify(body), head);
      return;
    }
    case '/readyz': {
      const readiness = await options.readiness();
      // Details quote server errors, which may quote a connection string: never its password.
      const checks = Object.fromEntries(
        Object.entries(readiness.checks).map(([name, check]) => [
          name,
          { ...check, detail: redactText(check.detail) },
        ]),
      );
      const missing = Object.entries(checks)
        .filter(([, check]) => !check.ok)
        .map(([name, check]) => `${name}: ${check.detail}`);
      const body = {
        status: readiness.ready ? 'ready' : 'not ready',
        checks,
        missing,
      };
      send(res, readiness.ready ? 200 : 503, JSON_TYPE, JSON.stringify(body), head);
      return;
    }
    default:
      send(
        res,
        404,
        JSON_TYPE,
        JSON.stringify({ error: 'not found', paths: ['/metrics', '/healthz', '/readyz'] }),
        head,
      );
  }
}

/** Starts the server; a port in use is a UserError naming the setting. */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const host = options.host ?? '127.0.0.1';
  const server = createServer((req, res) => {
    handle(req, res, options).catch((error: unknown) => {
      options.log.warn({ err: error, url: req.url }, 'HTTP request failed');
      if (!res.headersSent) {
        send(res, 500, JSON_TYPE, JSON.stringify({ error: (error as Error).message }), false);
      } else res.destroy();
    });
  });
  // Scrapers keep connections open; do not let them hold the process at shutdown.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE' || error.code === 'EACCES' || error.code === 'EADDRNOTAVAIL'
          ? new UserError(
              `cannot serve /metrics on ${host}:${options.port} (${error.code})`,
              'set HTTP_PORT to a free port (0 turns the server off) and HTTP_HOST to an address of this machine',
            )
          : error,
      );
    };
    server.once('error', onError);
    server.listen(options.port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    port,
    host,
    url: `http://${shownHost}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
