/** The client factory: each role's connection name and its behaviour while Redis is away. */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { freePort } from '@changeq/processes';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { connectionName, createRedis, type RedisRole } from '../src/redis.js';

describe('createRedis', () => {
  let server: RunningRedis;

  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  test('names each connection after its role (CLIENT LIST shows who is connected)', async () => {
    const roles: [RedisRole, string][] = [
      [{ role: 'ingest', ingestId: 'main' }, 'changeq-ingest-main'],
      [{ role: 'worker', worker: 'alpha' }, 'changeq-worker:alpha'],
      [{ role: 'worker-marker', worker: 'alpha' }, 'changeq-worker:alpha'],
      [
        { role: 'metrics', of: { role: 'ingest', ingestId: 'main' } },
        'changeq-ingest-main:metrics',
      ],
      [
        { role: 'metrics', of: { role: 'worker', worker: 'alpha' } },
        'changeq-worker:alpha:metrics',
      ],
      [{ role: 'cli', connectTimeoutMs: 1000 }, 'changeq-cli'],
      [{ role: 'board' }, 'changeq-board'],
    ];
    const inspector = new Redis(server.url);
    try {
      for (const [role, name] of roles) {
        expect(connectionName(role)).toBe(name);
        const redis = createRedis(server.url, role);
        try {
          if (redis.status === 'wait') await redis.connect();
          if (redis.status !== 'ready') await new Promise((ready) => redis.once('ready', ready));
          expect(await inspector.client('LIST')).toMatch(new RegExp(`name=${name} `));
        } finally {
          redis.disconnect();
        }
      }
    } finally {
      inspector.disconnect();
    }
  });

  test('commands wait for the connection only where the role needs it', () => {
    const options = (role: RedisRole) => {
      const redis = createRedis(server.url, role);
      redis.disconnect();
      return redis.options;
    };
    expect(options({ role: 'worker', worker: 'a' }).maxRetriesPerRequest).toBeNull();
    expect(options({ role: 'ingest', ingestId: 'a' }).maxRetriesPerRequest).toBe(2);
    const metrics = options({ role: 'metrics', of: { role: 'worker', worker: 'a' } });
    expect([metrics.enableOfflineQueue, metrics.maxRetriesPerRequest]).toEqual([false, 1]);
    const board = options({ role: 'board' });
    expect([board.enableOfflineQueue, board.maxRetriesPerRequest]).toEqual([false, 1]);
  });

  test('the CLI never retries its first connection', async () => {
    const port = await freePort();
    const redis = createRedis(`redis://127.0.0.1:${port}`, { role: 'cli', connectTimeoutMs: 1000 });
    redis.on('error', () => undefined);
    await expect(redis.connect()).rejects.toThrow(/ECONNREFUSED|Connection is closed/);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(redis.status).toBe('end');
  });
});
