import { existsSync, readFileSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, test } from 'vitest';
import { isAlive } from '@changeq/processes';
import { pingRedis, startRedis, type RunningRedis } from '../src/index.js';

describe('startRedis', () => {
  const started: RunningRedis[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((redis) => redis.stop()));
  });

  test('runs with the settings BullMQ asks for, on a port of its own', async () => {
    const redis = await startRedis();
    started.push(redis);
    const client = new Redis(redis.url);
    try {
      expect(await client.ping()).toBe('PONG');
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await client.config('GET', 'maxmemory-policy')).toEqual([
        'maxmemory-policy',
        'noeviction',
      ]);
      expect(await client.config('GET', 'bind')).toEqual(['bind', '127.0.0.1']);
    } finally {
      client.disconnect();
    }
  });

  test('keeps acknowledged writes across kill -9 with appendfsync always', async () => {
    const redis = await startRedis({ appendfsync: 'always' });
    started.push(redis);
    const before = new Redis(redis.url);
    await before.set('answer', '42');
    before.disconnect();
    const oldPid = redis.pid;
    await redis.kill('SIGKILL');
    expect(isAlive(oldPid)).toBe(false);
    await redis.restart();
    expect(redis.pid).not.toBe(oldPid);
    const after = new Redis(redis.url);
    try {
      expect(await after.get('answer')).toBe('42');
    } finally {
      after.disconnect();
    }
  });

  test('stop() ends the process and removes its temporary folder', async () => {
    const redis = await startRedis();
    await redis.stop();
    expect(isAlive(redis.pid)).toBe(false);
    expect(existsSync(redis.dataDir)).toBe(false);
  });

  test('a password (with any characters) and ACL users: in a file of mode 600, never on the command line', async () => {
    const password = 'p@ss/w0rd:%25 "\\x';
    const redis = await startRedis({
      password,
      users: [{ name: 'app', password: 'a:b@c/d', rules: '~app:* -@all +ping +get +set' }],
    });
    started.push(redis);
    expect(redis.url).toBe(`redis://:${encodeURIComponent(password)}@127.0.0.1:${redis.port}`);
    // redis-server shows its own title in ps; the file holds the secrets.
    const commandLine = readFileSync(`/proc/${redis.pid}/cmdline`, 'utf8');
    expect(commandLine).not.toContain('w0rd');
    expect(commandLine).not.toContain('a:b@c');
    expect(statSync(`${redis.dataDir}/changeq-secrets.conf`).mode & 0o777).toBe(0o600);
    expect(await pingRedis(redis.port)).toBe(false); // NOAUTH
    expect(await pingRedis(redis.port, '127.0.0.1', 1000, { password })).toBe(true);
    const admin = new Redis(redis.url);
    const app = new Redis(redis.urlFor({ name: 'app', password: 'a:b@c/d' }));
    try {
      expect(await admin.ping()).toBe('PONG');
      expect(await app.set('app:x', '1')).toBe('OK');
      await expect(app.get('other')).rejects.toThrow(/NOPERM/);
    } finally {
      admin.disconnect();
      app.disconnect();
    }
  });

  test('TLS only, with a CA and certificates made for it; a client certificate when asked', async () => {
    const redis = await startRedis({ tls: { clientCertificates: true }, password: 'tls-pw' });
    started.push(redis);
    expect(redis.url).toBe(`rediss://:tls-pw@127.0.0.1:${redis.port}`);
    const tls = redis.tls!;
    const subject = execFileSync('openssl', [
      'x509',
      '-in',
      tls.serverCert,
      '-noout',
      '-ext',
      'subjectAltName',
    ]).toString();
    expect(subject).toContain('IP Address:127.0.0.1');
    const client = new Redis(redis.url, {
      tls: {
        ca: readFileSync(tls.ca),
        cert: readFileSync(tls.clientCert),
        key: readFileSync(tls.clientKey),
      },
    });
    try {
      expect(await client.ping()).toBe('PONG');
    } finally {
      client.disconnect();
    }
    // No plain port.
    const plain = new Redis(`redis://:tls-pw@127.0.0.1:${redis.port}`, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 2000,
    });
    plain.on('error', () => undefined);
    await expect(plain.connect().then(() => plain.ping())).rejects.toThrow();
    plain.disconnect();
    expect(tls.env).toEqual({
      REDIS_TLS_CA: tls.ca,
      REDIS_TLS_CERT: tls.clientCert,
      REDIS_TLS_KEY: tls.clientKey,
    });
  });
});
