import { describe, expect, it } from 'vitest';
import {
  envReader,
  formatUserError,
  redactText,
  redactUri,
  redisClusterNodes,
  redisConnectionOptions,
  UserError,
} from '../src/index.js';

/** Runs `fn`, expects a UserError, and returns its one-line rendering. */
function userError(fn: () => unknown): { error: UserError; line: string } {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(UserError);
  const error = caught as UserError;
  const line = formatUserError(error);
  expect(line).not.toContain('\n');
  expect(line).toContain(' Fix: ');
  return { error, line };
}

describe('envReader().string / optionalString', () => {
  it('returns the trimmed value, the default, or fails naming the variable and the fix', () => {
    const env = envReader({ NAME: '  value ', EMPTY: '', BLANK: '   ' });
    expect(env.string('NAME')).toBe('value');
    expect(env.string('MISSING', { default: 'd' })).toBe('d');
    expect(env.string('EMPTY', { default: 'd' })).toBe('d'); // empty counts as unset
    expect(env.string('BLANK', { default: 'd' })).toBe('d');
    const { line } = userError(() => env.string('MISSING'));
    expect(line).toBe('MISSING is not set. Fix: set MISSING in the environment');
    const custom = userError(() => env.string('WORKERS_FILE', { fix: 'point it at workers.toml' }));
    expect(custom.line).toBe('WORKERS_FILE is not set. Fix: point it at workers.toml');
  });

  it('reads optional strings', () => {
    const env = envReader({ A: 'x', B: '' });
    expect(env.optionalString('A')).toBe('x');
    expect(env.optionalString('B')).toBeUndefined();
    expect(env.optionalString('C')).toBeUndefined();
  });

  it('reads process.env by default', () => {
    process.env.CHANGEQ_TEST_ENV_READER = 'from-process';
    try {
      expect(envReader().string('CHANGEQ_TEST_ENV_READER')).toBe('from-process');
    } finally {
      delete process.env.CHANGEQ_TEST_ENV_READER;
    }
  });
});

describe('envReader().int', () => {
  const opts = { default: 4, min: 1, max: 64 };

  it('parses whole numbers and falls back to the default', () => {
    const env = envReader({ A: '12', B: ' +7 ', C: '', D: '-3', E: '0064' });
    expect(env.int('A', opts)).toBe(12);
    expect(env.int('B', opts)).toBe(7);
    expect(env.int('C', opts)).toBe(4);
    expect(env.int('UNSET', opts)).toBe(4);
    expect(env.int('D', { default: 0, min: -5 })).toBe(-3);
    expect(env.int('E', opts)).toBe(64);
  });

  it.each(['12abc', '1.5', '0x10', '1e3', 'twelve', '1 2', '--1'])(
    'rejects %j as not a whole number',
    (value) => {
      const { line } = userError(() => envReader({ CONCURRENCY: value }).int('CONCURRENCY', opts));
      expect(line).toBe(
        `CONCURRENCY=${JSON.stringify(value)} is not a whole number. Fix: set CONCURRENCY to a whole number from 1 to 64, or unset CONCURRENCY to use the default (4)`,
      );
    },
  );

  it.each(['0', '65', '-1', '99999999999999999999'])('rejects %j as out of range', (value) => {
    const { line } = userError(() => envReader({ N: value }).int('N', opts));
    expect(line).toBe(
      `N=${JSON.stringify(value)} is out of range. Fix: set N to a whole number from 1 to 64, or unset N to use the default (4)`,
    );
  });

  it('words one-sided ranges', () => {
    expect(
      userError(() => envReader({ N: '0' }).int('N', { default: 5, min: 1 })).error.fix,
    ).toMatch(/^set N to a whole number of at least 1,/);
    expect(
      userError(() => envReader({ N: '9' }).int('N', { default: 5, max: 8 })).error.fix,
    ).toMatch(/^set N to a whole number of at most 8,/);
    expect(userError(() => envReader({ N: 'x' }).int('N', { default: 5 })).error.fix).toMatch(
      /^set N to a whole number, or unset N/,
    );
  });
});

describe('envReader().bool', () => {
  it.each([
    ['true', true],
    ['TRUE', true],
    ['1', true],
    ['yes', true],
    ['Yes', true],
    ['false', false],
    ['False', false],
    ['0', false],
    ['no', false],
    ['NO', false],
  ])('reads %j as %s', (value, expected) => {
    expect(envReader({ FLAG: value }).bool('FLAG', { default: !expected })).toBe(expected);
  });

  it('falls back to the default and rejects other words', () => {
    expect(envReader({}).bool('FLAG', { default: true })).toBe(true);
    expect(envReader({ FLAG: '' }).bool('FLAG', { default: false })).toBe(false);
    const { line } = userError(() => envReader({ FLAG: 'maybe' }).bool('FLAG', { default: false }));
    expect(line).toBe(
      'FLAG="maybe" is not a boolean. Fix: set FLAG to true or false (1/0 and yes/no work too), or unset FLAG to use the default (false)',
    );
    userError(() => envReader({ FLAG: 'on' }).bool('FLAG', { default: false }));
  });
});

describe('envReader().oneOf', () => {
  const formats = ['json', 'pretty'] as const;

  it('returns the canonical spelling of a listed value', () => {
    expect(envReader({ F: 'pretty' }).oneOf('F', formats, { default: 'json' })).toBe('pretty');
    expect(envReader({ F: 'JSON' }).oneOf('F', formats, { default: 'pretty' })).toBe('json');
    expect(envReader({}).oneOf('F', formats, { default: 'json' })).toBe('json');
  });

  it('rejects other values, listing the allowed ones', () => {
    const { line } = userError(() =>
      envReader({ F: 'xml' }).oneOf('F', formats, { default: 'json' }),
    );
    expect(line).toBe(
      'F="xml" is not one of json, pretty. Fix: set F to one of json, pretty, or unset F to use the default (json)',
    );
  });
});

describe('envReader().mongoUri', () => {
  it.each([
    'mongodb://127.0.0.1:27017/?replicaSet=rs0',
    'mongodb://app:s3cret@db1.example.net:27017,db2.example.net:27018/shop?replicaSet=rs0&authSource=admin',
    'mongodb+srv://app:s3cret@cluster0.example.net/shop?retryWrites=true',
    'mongodb://[::1]:27017/',
    'mongodb://%2Ftmp%2Fmongodb-27017.sock',
  ])('accepts %s', (uri) => {
    expect(envReader({ MONGODB_URI: ` ${uri} ` }).mongoUri()).toBe(uri);
  });

  it('fails when unset, with an example and where to get one', () => {
    const { line } = userError(() => envReader({}).mongoUri());
    expect(line).toBe(
      'MONGODB_URI is not set. Fix: set MONGODB_URI to a connection string such as mongodb://127.0.0.1:27017/?replicaSet=rs0 (npm run stack -- up prints one)',
    );
  });

  it.each([
    ['http://app:hunter22@db.example.net/', 'does not start with mongodb:// or mongodb+srv://'],
    ['app:hunter22@db.example.net:27017', 'does not start with mongodb:// or mongodb+srv://'],
    ['mongodb:///shop', 'has an empty host'],
    ['mongodb://app:hunter22@/shop', 'has an empty host'],
    ['mongodb://a:27017,,b:27017/', 'has an empty host'],
    ['mongodb+srv://app:hunter22@a.example.net,b.example.net/', 'more than one host'],
    ['mongodb+srv://app:hunter22@cluster0.example.net:27017/', 'with a port'],
    ['mongodb://app:hunter22@db:0/', 'invalid port "0"'],
    ['mongodb://db:99999/', 'has the invalid port "99999" (ports are 1 to 65535)'],
    ['mongodb://db:/', 'invalid port ""'],
    ['MongoDB://app:hunter22@db/', 'has its scheme in capitals'],
    // Unescaped characters in the credentials: the driver would read another password or host.
    ['mongodb://admin:hunter22/w0rd@127.0.0.1:1/', 'has a user name or password holding "/" as is'],
    ['mongodb://admin:p@hunter22@db/', 'has a user name or password holding "@" as is'],
    ['mongodb://admin:p@ss/hunter22@db/', 'holding "@" and "/" as is'],
    ['mongodb://admin:hunter22:x@db/', 'holding ":" as is'],
    ['mongodb://admin:hunter22%zz@db/', 'has a user name or password holding "%" as is'],
    ['mongodb://db/?appName=me@x', 'has an "@" in an option value, where it must be written %40'],
    // What the driver refuses, in its words.
    [
      'mongodb://app:hunter22@db/?bogus=1',
      'is refused by the MongoDB driver: option bogus is not supported',
    ],
    ['mongodb://app:hunter22@db/?tls=maybe', 'tls/ssl must be either "true" or "false"'],
    ['mongodb://app:hunter22@db/?authMechanism=FOO', 'authMechanism one of'],
  ])('rejects %s, quoting it without the password', (uri, problem) => {
    const { error, line } = userError(() => envReader({ SOURCE_URI: uri }).mongoUri('SOURCE_URI'));
    expect(error.problem.startsWith(`SOURCE_URI=${JSON.stringify(redactUri(uri))} `)).toBe(true);
    expect(error.problem).toContain(problem);
    expect(line).not.toContain('hunter22');
    expect(error.fix).toMatch(/^set SOURCE_URI to a connection string such as mongodb:\/\//);
  });
});

describe('envReader().redisUrl', () => {
  it.each([
    'redis://127.0.0.1:6379',
    'redis://localhost',
    'rediss://default:s3cret@cache.example.net:6380/2',
    'redis://:s3cret@[::1]:6379/0',
    'redis://h:6379/',
    'redis://app:a:b@h', // a ':' in a Redis password is read as part of it
    'redis://:p%2Fw%40d%3A%25@h/15',
  ])('accepts %s', (url) => {
    expect(envReader({ REDIS_URL: url }).redisUrl()).toBe(url);
  });

  it('fails when unset', () => {
    expect(userError(() => envReader({}).redisUrl()).line).toBe(
      'REDIS_URL is not set. Fix: set REDIS_URL to a URL such as redis://127.0.0.1:6379 (npm run stack -- up prints one)',
    );
  });

  it.each([
    ['http://cache:6379', 'does not start with redis://, rediss:// or (for a Redis Cluster) redis+cluster://'],
    ['127.0.0.1:6379', 'does not start with redis://, rediss:// or (for a Redis Cluster) redis+cluster://'],
    ['redis://:hunter22@cache:99999', 'has the port 99999, above 65535'],
    ['redis://:hunter22@cache:0', 'has port 0'],
    ['redis://:hunter22@cache:abc', 'is not a valid URL'],
    ['redis://', 'has no host'],
    ['redis://cache:6379/queue', 'has the path "/queue"'],
    // Unescaped characters in the credentials (WHATWG would read "2024" as a port and the rest
    // as a path, quoting the password in the message).
    ['redis://admin:2024/hunter22@127.0.0.1:1', 'has a user name or password holding "/" as is'],
    ['redis://admin:p@hunter22@127.0.0.1:1', 'has a user name or password holding "@" as is'],
    ['redis://:hunter22?x@127.0.0.1:1', 'has a user name or password holding "?" as is'],
    ['redis://:hunter22#x@127.0.0.1:1', 'has a user name or password holding "#" as is'],
    ['redis://:hunter 22@127.0.0.1:1', 'has a user name or password holding a space as is'],
    ['redis://:hunter22%@127.0.0.1:1', 'has a user name or password holding "%" as is'],
    ['redis://hunter22@127.0.0.1:1', 'has a user name but no password'],
    ['redis://cache/99999999999', 'has the database number 99999999999, which no Redis has'],
  ])('rejects %s, quoting it without the password', (url, problem) => {
    const { error, line } = userError(() =>
      envReader({ QUEUE_REDIS: url }).redisUrl('QUEUE_REDIS'),
    );
    expect(error.problem).toContain(`QUEUE_REDIS=${JSON.stringify(redactUri(url))} ${problem}`);
    expect(line).not.toContain('hunter22');
    expect(error.fix).toMatch(/^set QUEUE_REDIS to a URL such as redis:\/\/127\.0\.0\.1:6379/);
  });
});

describe('redisConnectionOptions', () => {
  it('returns host and port, and nothing else for a plain URL', () => {
    expect(redisConnectionOptions('redis://127.0.0.1:6390')).toEqual({
      host: '127.0.0.1',
      port: 6390,
    });
    expect(redisConnectionOptions('redis://cache')).toEqual({ host: 'cache', port: 6379 });
  });

  it('decodes user, password and database, and turns rediss into TLS', () => {
    expect(
      redisConnectionOptions('rediss://app%2B1:p%40ss%3Aw0rd@cache.example.net:6380/3'),
    ).toEqual({
      host: 'cache.example.net',
      port: 6380,
      username: 'app+1',
      password: 'p@ss:w0rd',
      db: 3,
      tls: {},
    });
    expect(redisConnectionOptions('redis://:secret@[::1]:6379/0')).toEqual({
      host: '::1',
      port: 6379,
      password: 'secret',
      db: 0,
    });
  });

  it('rejects an unusable URL without printing its password', () => {
    const { line } = userError(() => redisConnectionOptions('redis://:hunter22@cache:99999'));
    expect(line).toContain(
      'the Redis URL "redis://:***@cache:99999" has the port 99999, above 65535',
    );
    expect(line).not.toContain('hunter22');
    userError(() => redisConnectionOptions('mongodb://x'));
  });
});

describe('Redis Cluster URLs', () => {
  it('lists the seed nodes and gives every node the same credentials and TLS', () => {
    const url = 'rediss+cluster://app:p%40ss@10.0.0.1:7000,10.0.0.2:7001,[::1]';
    expect(redisClusterNodes(url)).toEqual([
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: '::1', port: 6379 },
    ]);
    expect(redisConnectionOptions(url)).toEqual({
      host: '10.0.0.1',
      port: 7000,
      username: 'app',
      password: 'p@ss',
      tls: {},
    });
    expect(redisClusterNodes('redis://127.0.0.1:6379')).toBeUndefined();
    expect(redactUri(url)).toBe('rediss+cluster://app:***@10.0.0.1:7000,10.0.0.2:7001,[::1]');
  });

  it.each([
    ['redis+cluster://h:7000,,h:7002', 'has an empty host in its list'],
    ['redis+cluster://:pw@h:7000,h:99999', 'has the port 99999, above 65535'],
    [
      'redis+cluster://h:7000,h:7001/2',
      'selects database 2, but a Redis Cluster has only database 0',
    ],
  ])('refuses %s in one line', (url, problem) => {
    const { line } = userError(() => redisConnectionOptions(url));
    expect(line).toContain(problem);
    expect(line).not.toContain(':pw@');
  });
});

describe('redactUri', () => {
  it.each([
    ['mongodb://user:secret@h/', 'mongodb://user:***@h/'],
    [
      'mongodb://app:s3cret@db1:27017,db2:27018/shop?replicaSet=rs0',
      'mongodb://app:***@db1:27017,db2:27018/shop?replicaSet=rs0',
    ],
    [
      'mongodb+srv://u:p%40ss@cluster0.example.net/?w=majority',
      'mongodb+srv://u:***@cluster0.example.net/?w=majority',
    ],
    ['redis://:pw@cache:6379/0', 'redis://:***@cache:6379/0'],
    ['rediss://default:pw@cache', 'rediss://default:***@cache'],
    ['user:secret@host:27017', 'user:***@host:27017'],
    // Passwords with unescaped special characters: mask more rather than less.
    ['mongodb://u:p@ss@h/', 'mongodb://u:***@h/'],
    ['mongodb://u:pa/ss@h/db', 'mongodb://u:***@h/db'],
    ['mongodb://u:pa?ss@h/db', 'mongodb://u:***@h/db'],
    ['mongodb://u:pa#ss@h/db', 'mongodb://u:***@h/db'],
    // The passwords of issue 12: '/' and '@' as is.
    ['redis://admin:2024/Secret@127.0.0.1:1', 'redis://admin:***@127.0.0.1:1'],
    ['mongodb://admin:p@ss/w0rd@127.0.0.1:1/', 'mongodb://admin:***@127.0.0.1:1/'],
    // Every other shape: several hosts, srv, rediss, password only, user only, '%' and ':'.
    [
      'mongodb://u:12/3@h1:1,h2:2,[::1]:3/db?replicaSet=rs',
      'mongodb://u:***@h1:1,h2:2,[::1]:3/db?replicaSet=rs',
    ],
    [
      'mongodb+srv://u:a/b@c@cluster0.example.net/?w=1',
      'mongodb+srv://u:***@cluster0.example.net/?w=1',
    ],
    ['rediss://u:1:2@h:6380/0', 'rediss://u:***@h:6380/0'],
    ['redis://:50%off@h', 'redis://:***@h'],
    ['redis://:p%2Fw%40d@h/3', 'redis://:***@h/3'],
    ['redis://s3cret@h:1', 'redis://***@h:1'],
    ['rediss://s3cret@h:1', 'rediss://***@h:1'],
    // An '@' in an option value (which the driver refuses) masks hosts and options too: never
    // less than the password.
    ['mongodb://h:27017/db?appName=me@x', 'mongodb://h:***@x'],
    ['mongodb://u:pw@h/db?appName=me@x', 'mongodb://u:***@x'],
    // Secrets in query parameters.
    [
      'mongodb://h/?authMechanism=PLAIN&password=x1&tlsCertificateKeyFilePassword=y2&w=1',
      'mongodb://h/?authMechanism=PLAIN&password=***&tlsCertificateKeyFilePassword=***&w=1',
    ],
    [
      'mongodb://u:p@h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:abc,SERVICE_NAME:x',
      'mongodb://u:***@h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:***,SERVICE_NAME:x',
    ],
    ['https://api.example.net/hook?token=abc#frag', 'https://api.example.net/hook?token=***#frag'],
    // Nothing to hide.
    ['mongodb://h:27017/db', 'mongodb://h:27017/db'],
    [
      'mongodb://user@h/?authMechanism=MONGODB-X509',
      'mongodb://user@h/?authMechanism=MONGODB-X509',
    ],
    ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379'],
  ])('%s -> %s', (input, output) => {
    expect(redactUri(input)).toBe(output);
  });

  it('never throws on garbage and leaves text without credentials alone', () => {
    const garbage = [
      '',
      'not a uri',
      '://',
      '@@@',
      ':::',
      '%%%',
      'mongodb://',
      '\u0000',
      '?&=;#',
      'a'.repeat(100_000),
    ];
    for (const value of garbage) expect(redactUri(value)).toBe(value);
    for (const value of [
      null,
      undefined,
      42,
      {},
      {
        toString: () => {
          throw new Error('boom');
        },
      },
    ]) {
      expect(() => redactUri(value as unknown as string)).not.toThrow();
    }
  });

  it('never leaves a password in the output, whatever characters it holds', () => {
    // A deterministic pseudo-random generator, so a failure can be reproduced (its high bits:
    // the low bits of a power-of-two LCG repeat with short periods).
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) >>> 12;
    const pick = <T>(list: readonly T[]): T => list[next() % list.length]!;
    const alphabet = 'abcXYZ019@/?#:%&=;.,!~-_';
    for (let i = 0; i < 5000; i++) {
      let middle = '';
      const length = next() % 12;
      for (let j = 0; j < length; j++) middle += alphabet[next() % alphabet.length];
      // Passwords that start like a port (2024/...) fooled the old redaction; 'Zq' marks the end.
      const password = `${pick(['', '2024', '7', 'Pw'])}${middle}Zq`;
      const user = pick(['user', 'admin', '']);
      const scheme = pick(['mongodb://', 'mongodb+srv://', 'redis://', 'rediss://']);
      const hosts = pick(['host', '127.0.0.1:1', 'h1:27017,h2:27018', '[::1]:6379']);
      const tail = pick(['', '/', '/db', '/3', '/db?replicaSet=rs0', '/?appName=a@b', '?w=1']);
      const uri = `${scheme}${user}:${password}@${hosts}${tail}`;
      const redacted = redactUri(uri);
      expect(redacted, uri).not.toContain('Zq');
      expect(redacted, uri).toContain(`${user}:***@`);
    }
  });
});

describe('redactText', () => {
  it('masks every URI inside a longer text', () => {
    expect(
      redactText(
        'cannot reach mongodb://app:pw1@db:27017/?replicaSet=rs0 (timed out); tried "redis://:pw2@cache:6379" too',
      ),
    ).toBe(
      'cannot reach mongodb://app:***@db:27017/?replicaSet=rs0 (timed out); tried "redis://:***@cache:6379" too',
    );
    expect(redactText('no uri here: a:b@c')).toBe('no uri here: a:b@c');
    expect(() => redactText(undefined as unknown as string)).not.toThrow();
  });
});
