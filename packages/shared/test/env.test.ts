import { describe, expect, it } from 'vitest';
import {
  envReader,
  formatUserError,
  redactText,
  redactUri,
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
    'MongoDB://host',
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
  ])('accepts %s', (url) => {
    expect(envReader({ REDIS_URL: url }).redisUrl()).toBe(url);
  });

  it('fails when unset', () => {
    expect(userError(() => envReader({}).redisUrl()).line).toBe(
      'REDIS_URL is not set. Fix: set REDIS_URL to a URL such as redis://127.0.0.1:6379 (npm run stack -- up prints one)',
    );
  });

  it.each([
    ['http://cache:6379', 'does not start with redis:// or rediss://'],
    ['127.0.0.1:6379', 'does not start with redis:// or rediss://'],
    ['redis://:hunter22@cache:99999', 'has the port 99999, above 65535'],
    ['redis://:hunter22@cache:0', 'has port 0'],
    ['redis://:hunter22@cache:abc', 'is not a valid URL'],
    ['redis://', 'has no host'],
    ['redis://cache:6379/queue', 'has the path "/queue"'],
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
    // An '@' after the hosts is not a password.
    ['mongodb://h:27017/db?appName=me@x', 'mongodb://h:27017/db?appName=me@x'],
    ['mongodb://u:pw@h/db?appName=me@x', 'mongodb://u:***@h/db?appName=me@x'],
    ['mongodb://[::1]:27017/db?appName=a@b', 'mongodb://[::1]:27017/db?appName=a@b'],
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
    // A deterministic pseudo-random generator, so a failure can be reproduced.
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    const alphabet = 'abcXYZ019@/?#:%&=;.,!~-_';
    for (let i = 0; i < 2000; i++) {
      let middle = '';
      const length = next() % 12;
      for (let j = 0; j < length; j++) middle += alphabet[next() % alphabet.length];
      const password = `Pw${middle}Zq`;
      const scheme = ['mongodb://', 'mongodb+srv://', 'redis://', 'rediss://'][next() % 4];
      const tail = ['', '/', '/db', '/db?replicaSet=rs0', '/?appName=a@b', ':27017/x?y=1'][
        next() % 6
      ];
      const uri = `${scheme}user:${password}@host${tail}`;
      const redacted = redactUri(uri);
      expect(redacted, uri).not.toContain(password);
      expect(redacted, uri).toContain('user:***');
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
