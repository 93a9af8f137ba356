/** The board's pure parts: settings, basic-auth parsing and comparison, the job data formatter. */
import { describe, expect, it } from 'vitest';
import { BSON, Decimal128, Long, ObjectId, Timestamp } from 'mongodb';
import { encodeEvent, type UserError } from '@changeq/shared';
import {
  FailedSignInThrottle,
  credentialsMatch,
  formatJobData,
  isLoopback,
  parseBasicAuth,
  readBoardConfig,
  relaxExtendedJson,
} from '../src/index.js';

const REDIS = { REDIS_URL: 'redis://127.0.0.1:6379' };

function userError(fn: () => unknown): UserError {
  try {
    fn();
  } catch (error) {
    return error as UserError;
  }
  throw new Error('expected a UserError');
}

describe('settings', () => {
  it('defaults: loopback, port 3000, base path /, no auth, not read-only', () => {
    const config = readBoardConfig({ ...REDIS });
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 3000,
      basePath: '/',
      prefix: 'changeq',
      credentials: undefined,
      readOnly: false,
    });
    expect(config.workersFile).toMatch(/\/workers\.toml$/);
  });

  it.each([
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['::1', true],
    ['[::1]', true],
    ['::ffff:127.0.0.1', true],
    ['localhost', true],
    ['0.0.0.0', false],
    ['::', false],
    ['192.168.1.20', false],
    ['::ffff:10.0.0.1', false],
    ['board.example.com', false],
  ])('isLoopback(%s) = %s', (host, expected) => {
    expect(isLoopback(host)).toBe(expected);
  });

  it('refuses a non-loopback address without credentials, naming both ways out', () => {
    const error = userError(() => readBoardConfig({ ...REDIS, BOARD_HOST: '0.0.0.0' }));
    expect(error.problem).toMatch(/BOARD_HOST="0\.0\.0\.0" makes the board reachable/);
    expect(error.fix).toMatch(/set BOARD_USER and BOARD_PASSWORD/);
    expect(error.fix).toMatch(/unset BOARD_HOST/);
  });

  it('switches basic auth on whenever credentials are set, loopback too', () => {
    expect(
      readBoardConfig({ ...REDIS, BOARD_USER: 'ops', BOARD_PASSWORD: ' s3cret: ' }).credentials,
    ).toEqual({ user: 'ops', password: ' s3cret: ' });
    expect(
      readBoardConfig({
        ...REDIS,
        BOARD_HOST: '0.0.0.0',
        BOARD_USER: 'ops',
        BOARD_PASSWORD: 'x',
      }).host,
    ).toBe('0.0.0.0');
  });

  it.each([
    [{ BOARD_USER: 'ops' }, /BOARD_USER is set but BOARD_PASSWORD is not/],
    [{ BOARD_PASSWORD: 'x' }, /BOARD_PASSWORD is set but BOARD_USER is not/],
    [{ BOARD_USER: 'a:b', BOARD_PASSWORD: 'x' }, /BOARD_USER contains ":"/],
    [{ BOARD_PORT: '70000' }, /BOARD_PORT="70000" is out of range/],
    [{ BOARD_PORT: 'eighty' }, /BOARD_PORT="eighty" is not a whole number/],
    [{ BOARD_BASE_PATH: 'queues' }, /BOARD_BASE_PATH="queues" is not a URL path/],
    [{ BOARD_READ_ONLY: 'maybe' }, /BOARD_READ_ONLY="maybe" is not a boolean/],
    [{ REDIS_URL: '' }, /REDIS_URL is not set/],
  ])('%j is refused', (env, pattern) => {
    expect(userError(() => readBoardConfig({ ...REDIS, ...env })).problem).toMatch(pattern);
  });

  it('normalizes the base path', () => {
    expect(readBoardConfig({ ...REDIS, BOARD_BASE_PATH: '/ops/queues/' }).basePath).toBe(
      '/ops/queues',
    );
    expect(readBoardConfig({ ...REDIS, BOARD_READ_ONLY: 'yes' }).readOnly).toBe(true);
  });
});

describe('basic auth', () => {
  const header = (text: string) => `Basic ${Buffer.from(text, 'utf8').toString('base64')}`;
  const expected = { user: 'ops', password: 'pä:ss' };

  it('parses the header (a password may hold ":" and non-ASCII)', () => {
    expect(parseBasicAuth(header('ops:pä:ss'))).toEqual(expected);
    expect(parseBasicAuth('basic   ' + Buffer.from('a:').toString('base64'))).toEqual({
      user: 'a',
      password: '',
    });
    expect(parseBasicAuth(undefined)).toBeUndefined();
    expect(parseBasicAuth('Bearer abc')).toBeUndefined();
    expect(parseBasicAuth(header('no-colon'))).toBeUndefined();
  });

  it('accepts exactly the configured pair', () => {
    expect(credentialsMatch(parseBasicAuth(header('ops:pä:ss')), expected)).toBe(true);
    for (const wrong of ['ops:pä:s', 'ops:pä:sss', 'Ops:pä:ss', ':pä:ss', 'ops:', 'x:y']) {
      expect(credentialsMatch(parseBasicAuth(header(wrong)), expected)).toBe(false);
    }
    expect(credentialsMatch(undefined, expected)).toBe(false);
  });
});

describe('failed sign-in throttle', () => {
  it('allows a burst, then one failure per refill period; a success restores the budget', () => {
    let now = 1_000_000;
    const throttle = new FailedSignInThrottle({ burst: 3, refillMs: 1000, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(throttle.retryAfterMs('a')).toBe(0);
      throttle.failed('a');
    }
    expect(throttle.retryAfterMs('a')).toBe(1000);
    expect(throttle.retryAfterMs('b')).toBe(0); // another address is not affected
    now += 400;
    expect(throttle.retryAfterMs('a')).toBe(600);
    now += 600;
    expect(throttle.retryAfterMs('a')).toBe(0); // one more guess after a whole period
    throttle.failed('a');
    expect(throttle.retryAfterMs('a')).toBe(1000);
    now += 10_000; // refills to the burst, never beyond it
    for (let i = 0; i < 3; i++) throttle.failed('a');
    expect(throttle.retryAfterMs('a')).toBeGreaterThan(0);
    throttle.succeeded('a');
    expect(throttle.retryAfterMs('a')).toBe(0);
  });
});

describe('job data formatter', () => {
  const id = new ObjectId();
  const at = new Date('2026-01-02T03:04:05.678Z');
  const event = {
    _id: { _data: '82650000000001' },
    operationType: 'update',
    clusterTime: new Timestamp({ t: 1_700_000_000, i: 3 }),
    ns: { db: 'shop', coll: 'orders' },
    documentKey: { _id: id },
    updateDescription: {
      updatedFields: { status: 'shipped', total: Decimal128.fromString('12.50'), at },
      removedFields: [],
    },
    fullDocument: { _id: id, items: 3, big: Long.fromString('9007199254740993') },
  };

  it('shows ns, op, doc and the event as relaxed Extended JSON, never rounded', () => {
    const data = encodeEvent(event, { ns: 'shop.orders', op: 'update', doc: 'd1' });
    const shown = formatJobData(data) as Record<string, unknown>;
    expect(Object.keys(shown)).toEqual(['ns', 'op', 'doc', 'event']);
    expect(shown).toMatchObject({ ns: 'shop.orders', op: 'update', doc: 'd1' });
    const { big: _big, ...small } = event.fullDocument;
    const exactEnough = { ...event, fullDocument: small };
    // Where bson's relaxed mode is exact, the board shows the same.
    expect(
      (
        formatJobData(encodeEvent(exactEnough, { ns: 'shop.orders', op: 'update', doc: 'd1' })) as {
          event: unknown;
        }
      ).event,
    ).toEqual(BSON.EJSON.serialize(exactEnough, { relaxed: true }));
    expect(shown.event).toMatchObject({
      operationType: 'update',
      documentKey: { _id: { $oid: id.toHexString() } },
      updateDescription: {
        updatedFields: {
          status: 'shipped',
          total: { $numberDecimal: '12.50' },
          at: { $date: '2026-01-02T03:04:05.678Z' },
        },
      },
      fullDocument: { items: 3, big: { $numberLong: '9007199254740993' } },
    });
  });

  it('decodes events carried as BSON (field names starting with $)', () => {
    const odd = { ...event, fullDocument: { _id: id, $price: 5 } };
    const data = encodeEvent(odd, { ns: 'shop.orders', op: 'update', doc: 'd1' });
    expect(data.bson).toBeDefined();
    const shown = formatJobData(data) as { event: { fullDocument: Record<string, unknown> } };
    expect(shown.event.fullDocument.$price).toBe(5);
    expect(shown).not.toHaveProperty('bson');
  });

  it('keeps the dead-letter details of a dead letter', () => {
    const data = {
      ...encodeEvent(event, { ns: 'shop.orders', op: 'update', doc: 'd1' }),
      deadLetter: { kind: 'dead', error: { message: 'boom' }, attempts: 1 },
    };
    const shown = formatJobData(data) as Record<string, unknown>;
    expect(Object.keys(shown)).toEqual(['ns', 'op', 'doc', 'deadLetter', 'event']);
    expect(shown.deadLetter).toEqual(data.deadLetter);
  });

  it('shows what is stored, and why, when the event cannot be decoded', () => {
    const data = { v: 99, ns: 'shop.orders', op: 'insert', doc: null, event: { a: 1 } };
    expect(formatJobData(data)).toMatchObject({
      event: { a: 1 },
      v: 99,
      decodeError: expect.stringMatching(/version 99 is not known to this board/) as unknown,
    });
    expect(formatJobData({ hello: 'world' })).toEqual({ hello: 'world' });
    expect(formatJobData(null)).toBeNull();
  });
});

describe('relaxed but exact Extended JSON', () => {
  it('relaxes what it can write exactly and keeps the wrapper otherwise', () => {
    const canonical = BSON.EJSON.serialize(
      {
        int: 7,
        double: 2.5,
        whole: new BSON.Double(3),
        negZero: -0,
        nan: NaN,
        inf: -Infinity,
        small: Long.fromNumber(42),
        huge: Long.fromString('-9223372036854775808'),
        date: new Date('2026-05-06T07:08:09.010Z'),
        early: new Date(-1),
        late: new Date(253_402_300_800_000),
        list: [1, { nested: Long.fromString('9007199254740993') }],
      },
      { relaxed: false },
    );
    expect(relaxExtendedJson(canonical)).toEqual({
      int: 7,
      double: 2.5,
      whole: 3,
      negZero: { $numberDouble: '-0.0' },
      nan: { $numberDouble: 'NaN' },
      inf: { $numberDouble: '-Infinity' },
      small: 42,
      huge: { $numberLong: '-9223372036854775808' },
      date: { $date: '2026-05-06T07:08:09.010Z' },
      early: { $date: { $numberLong: '-1' } },
      late: { $date: { $numberLong: '253402300800000' } },
      list: [1, { nested: { $numberLong: '9007199254740993' } }],
    });
  });

  it('keeps a field named __proto__ as data', () => {
    const relaxed = relaxExtendedJson(JSON.parse('{"__proto__": {"$numberInt": "1"}}')) as object;
    expect(Object.getOwnPropertyDescriptor(relaxed, '__proto__')?.value).toBe(1);
    expect(Object.getPrototypeOf(relaxed)).toBe(Object.prototype);
  });
});
