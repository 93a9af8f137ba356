import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_QUEUE_PREFIX,
  LATEST_CLUSTER_TIME,
  UserError,
  createMongoClient,
  envReader,
  formatUserError,
  parseDateTime,
  parseQueuePrefix,
  redisConnectionOptions,
} from '../src/index.js';

function userError(fn: () => unknown): string {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(UserError);
  const line = formatUserError(caught as UserError);
  expect(line).not.toContain('\n');
  return line;
}

describe('parseQueuePrefix: the one rule of every process', () => {
  it('takes letters, digits, -, _ and a hash tag, trimmed like every setting', () => {
    expect(parseQueuePrefix(undefined)).toBe(DEFAULT_QUEUE_PREFIX);
    expect(parseQueuePrefix('')).toBe(DEFAULT_QUEUE_PREFIX);
    expect(parseQueuePrefix('   ')).toBe(DEFAULT_QUEUE_PREFIX);
    expect(parseQueuePrefix('qp ')).toBe('qp'); // the worker used to serve "qp :alpha"
    expect(parseQueuePrefix(' {changeq} ')).toBe('{changeq}');
    expect(parseQueuePrefix('a-b_C9')).toBe('a-b_C9');
    expect(envReader({ QUEUE_PREFIX: 'qp ' }).queuePrefix()).toBe('qp');
  });

  it.each([
    ['a:b', 'QUEUE_PREFIX="a:b" holds ":"; a prefix may only hold letters, digits, -, _ and {}'],
    ['q p', 'QUEUE_PREFIX="q p" holds " "'],
    ['a.b/c', 'holds ".", "/"'],
    ['x'.repeat(65), 'is 65 characters long (at most 64)'],
  ])('refuses %j with one line', (raw, problem) => {
    const line = userError(() => parseQueuePrefix(raw));
    expect(line).toContain(problem);
    expect(line).toContain('Fix: set QUEUE_PREFIX to the prefix every changeq process');
  });

  it('names the flag it came from', () => {
    expect(userError(() => parseQueuePrefix('a:b', '--prefix'))).toMatch(/^--prefix="a:b" holds/);
  });
});

describe('parseDateTime: START_AT and token set --at', () => {
  const parse = (raw: string) => parseDateTime(raw, 'START_AT', (e) => `set START_AT=${e}`);

  it('reads ISO 8601 dates and date-times', () => {
    expect(parse('2026-11-22').toISOString()).toBe('2026-11-22T00:00:00.000Z');
    expect(parse('2026-11-22T08:00:00Z').toISOString()).toBe('2026-11-22T08:00:00.000Z');
    expect(parse('2026-11-22T08:00Z').toISOString()).toBe('2026-11-22T08:00:00.000Z');
    expect(parse('2026-11-22T08:00:00.250+01:00').toISOString()).toBe('2026-11-22T07:00:00.250Z');
    expect(parse('2026-11-22T08:00:00-0130').toISOString()).toBe('2026-11-22T09:30:00.000Z');
    expect(parse('2024-02-29T00:00:00Z').toISOString()).toBe('2024-02-29T00:00:00.000Z');
    expect(parse('2106-02-07T06:28:15Z')).toEqual(LATEST_CLUSTER_TIME);
    expect(parse('1970-01-01T00:00:00Z').getTime()).toBe(0);
  });

  it.each([
    ['2026-02-30', 'has the day 30, which 2026-02 does not have (it has 28 days)'],
    ['2025-02-29T00:00:00Z', 'has the day 29, which 2025-02 does not have'],
    ['2026-04-31T10:00:00Z', 'has the day 31, which 2026-04 does not have (it has 30 days)'],
    ['2026-13-01', 'has the month 13, which does not exist'],
    ['2026-00-10', 'has the month 00'],
    ['2026-11-22T24:00:00Z', 'has the time 24:00:00, which does not exist'],
    ['2026-11-22T08:60:00Z', 'has the time 08:60:00'],
    ['2026-11-22T08:00:00+25:00', 'has the UTC offset +25:00'],
    [
      '2106-02-07T06:28:16Z',
      'is after 2106-02-07T06:28:15Z, the last second a MongoDB cluster time can hold',
    ],
    ['2200-01-01', 'is after 2106-02-07T06:28:15Z'],
    ['1969-12-31T23:59:59Z', 'is before 1970-01-01T00:00:00Z'],
    ['yesterday', 'is not an ISO 8601 date-time'],
    ['2026-11-22 garbage', 'is not an ISO 8601 date-time'],
    ['22/11/2026', 'is not an ISO 8601 date-time'],
  ])('refuses %s', (raw, problem) => {
    expect(userError(() => parse(raw))).toContain(`START_AT=${JSON.stringify(raw)} ${problem}`);
    expect(userError(() => parse(raw))).toContain('Fix: set START_AT=2026-11-22T08:00:00Z');
  });
});

describe('createMongoClient', () => {
  it('turns what the driver refuses into one line without the password', () => {
    const line = userError(() =>
      createMongoClient('mongodb://app:hunter22@db/?tls=maybe', {}, 'SOURCE_URI'),
    );
    expect(line).toContain(
      'SOURCE_URI="mongodb://app:***@db/?tls=maybe" is not usable: tls/ssl must be either "true" or "false"',
    );
    expect(line).not.toContain('hunter22');
    expect(line).toContain('Fix: correct SOURCE_URI');
  });

  it('returns a client (that has not connected) for a good string', async () => {
    const client = createMongoClient('mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=10');
    await client.close();
  });
});

describe('Redis over TLS: rediss:// with REDIS_TLS_CA, REDIS_TLS_CERT, REDIS_TLS_KEY', () => {
  const dir = mkdtempSync(join(tmpdir(), 'changeq-tls-settings-'));
  const pem = (name: string) => {
    const file = join(dir, name);
    writeFileSync(file, `-----BEGIN CERTIFICATE-----\n${name}\n-----END CERTIFICATE-----\n`);
    return file;
  };
  const ca = pem('ca.pem');
  const cert = pem('client.pem');
  const key = pem('client.key');
  const notPem = join(dir, 'not.pem');
  writeFileSync(notPem, 'just text\n');

  it('reads the files into the connection options', () => {
    expect(redisConnectionOptions('rediss://:pw@h:6380', {})).toEqual({
      host: 'h',
      port: 6380,
      password: 'pw',
      tls: {},
    });
    const options = redisConnectionOptions('rediss://h', {
      REDIS_TLS_CA: ca,
      REDIS_TLS_CERT: cert,
      REDIS_TLS_KEY: key,
    });
    expect(options.tls?.ca).toContain('ca.pem');
    expect(options.tls?.cert).toContain('client.pem');
    expect(options.tls?.key).toContain('client.key');
  });

  it.each([
    [
      { REDIS_TLS_CA: ca },
      'redis://h',
      'REDIS_TLS_CA is set, but the Redis URL starts with redis://',
    ],
    [{ REDIS_TLS_CA: join(dir, 'missing.pem') }, 'rediss://h', 'cannot be read (ENOENT)'],
    [{ REDIS_TLS_CA: notPem }, 'rediss://h', 'is not a PEM file'],
    [{ REDIS_TLS_CERT: cert }, 'rediss://h', 'REDIS_TLS_CERT is set without REDIS_TLS_KEY'],
  ])('refuses %j with %s', (env, url, problem) => {
    expect(userError(() => redisConnectionOptions(url, env))).toContain(problem);
    // envReader checks them at start-up, not at the first connection.
    expect(userError(() => envReader({ ...env, REDIS_URL: url }).redisUrl())).toContain(problem);
  });
});
