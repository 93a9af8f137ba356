import { afterEach, describe, expect, test } from 'vitest';
import { Counter } from 'prom-client';
import { createLogger, UserError } from '@changeq/shared';
import {
  createRegistry,
  evaluateReadiness,
  startHttpServer,
  type RunningHttpServer,
} from '../src/index.js';

const log = createLogger({ name: 'test', level: 'silent' });
const servers: RunningHttpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function serve(ready: { redis: boolean; lease: boolean }) {
  const registry = createRegistry();
  new Counter({ name: 'changeq_test_total', help: 'a test counter', registers: [registry] }).inc(3);
  const server = await startHttpServer({
    port: 0,
    registry,
    log,
    readiness: () =>
      evaluateReadiness({
        redis: () => ({ ok: ready.redis, detail: ready.redis ? 'connected' : 'connection lost' }),
        lease: async () => ({ ok: ready.lease, detail: ready.lease ? 'held' : 'standby' }),
      }),
  });
  servers.push(server);
  return server;
}

describe('the observability server', () => {
  test('/readyz and /healthz never quote a password of a connection string in their details', async () => {
    const detail = 'cannot reach Redis at redis://admin:2024/S3cr3t@127.0.0.1:1 (ECONNREFUSED)';
    const server = await startHttpServer({
      port: 0,
      registry: createRegistry(),
      log,
      liveness: () => ({ ok: false, detail }),
      readiness: () => evaluateReadiness({ redis: () => ({ ok: false, detail }) }),
    });
    servers.push(server);
    for (const path of ['/readyz', '/healthz']) {
      const text = await (await fetch(`${server.url}${path}`)).text();
      expect(text).toContain('redis://admin:***@127.0.0.1:1 (ECONNREFUSED)');
      expect(text).not.toContain('S3cr3t');
    }
  });

  test('/metrics serves Prometheus text with the changeq_ default process metrics', async () => {
    const server = await serve({ redis: true, lease: true });
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('changeq_test_total 3');
    expect(text).toMatch(/^changeq_process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^changeq_nodejs_eventloop_lag_seconds /m);
  });

  test('/healthz is 200 while /readyz is 503 naming what is missing, then 200', async () => {
    const ready = { redis: false, lease: false };
    const server = await serve(ready);
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });

    let res = await fetch(`${server.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      status: 'not ready',
      checks: {
        redis: { ok: false, detail: 'connection lost' },
        lease: { ok: false, detail: 'standby' },
      },
      missing: ['redis: connection lost', 'lease: standby'],
    });
    ready.redis = true;
    res = await fetch(`${server.url}/readyz`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { missing: string[] }).missing).toEqual(['lease: standby']);
    ready.lease = true;
    res = await fetch(`${server.url}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ready', missing: [] });
  });

  test('a check that throws counts as not ready, with its message', async () => {
    const readiness = await evaluateReadiness({
      mongodb: () => {
        throw new Error('no answer within 2000 ms');
      },
    });
    expect(readiness).toEqual({
      ready: false,
      checks: { mongodb: { ok: false, detail: 'no answer within 2000 ms' } },
    });
  });

  test('unknown paths are 404, other methods 405, HEAD has no body', async () => {
    const server = await serve({ redis: true, lease: true });
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    const post = await fetch(`${server.url}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const head = await fetch(`${server.url}/healthz`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  test('/healthz is 503 naming the stuck step while the liveness check fails, 200 again after', async () => {
    let stuck: string | undefined = 'ending a term has not finished 12 s after its deadline';
    const server = await startHttpServer({
      port: 0,
      registry: createRegistry({ defaultMetrics: false }),
      log,
      readiness: () => evaluateReadiness({}),
      liveness: () =>
        stuck === undefined ? { ok: true, detail: 'fine' } : { ok: false, detail: stuck },
    });
    servers.push(server);
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      status: 'stuck',
      detail: 'ending a term has not finished 12 s after its deadline',
    });
    stuck = undefined;
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  test('a port in use is a UserError naming HTTP_PORT', async () => {
    const first = await serve({ redis: true, lease: true });
    const attempt = startHttpServer({
      port: first.port,
      registry: createRegistry({ defaultMetrics: false }),
      log,
      readiness: () => evaluateReadiness({}),
    });
    await expect(attempt).rejects.toBeInstanceOf(UserError);
    await expect(attempt).rejects.toThrow(
      /cannot serve \/metrics on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/,
    );
  });
});
