import { ObjectId, Timestamp } from 'mongodb';
import { describe, expect, test } from 'vitest';
import { UserError } from '@changeq/shared';
import {
  StreamReadError,
  isMongoError,
  isTransientMongoError,
  isTransientRedisError,
  lostPositionCode,
  encodeError,
} from '../src/failures.js';
import { decodeMatch, decodeStart, encodeMatch, encodeStart } from '../src/reader/protocol.js';
import {
  decodePosition,
  decodeStored,
  encodePosition,
  encodeStartMarker,
} from '../src/position-store.js';
import { compareTokenData, tokenClusterTime } from '../src/resume-token.js';
import { parseWatch, scopeMatch, singleDatabase } from '../src/watch-scope.js';

describe('WATCH', () => {
  test('empty = the whole deployment minus system and excluded databases', () => {
    const scope = parseWatch('', ['audit']);
    expect(scope).toEqual({
      kind: 'deployment',
      excludeDbs: ['admin', 'local', 'config', 'audit'],
    });
    expect(scopeMatch(scope)).toEqual({ 'ns.db': { $nin: ['admin', 'local', 'config', 'audit'] } });
  });

  test('a database, one collection, several namespaces (dots in collection names kept)', () => {
    expect(parseWatch('shop')).toEqual({ kind: 'database', db: 'shop' });
    expect(parseWatch('shop.orders.v2')).toEqual({
      kind: 'collection',
      db: 'shop',
      coll: 'orders.v2',
    });
    const many = parseWatch('shop.orders, shop.users');
    expect(many).toEqual({
      kind: 'namespaces',
      namespaces: [
        { db: 'shop', coll: 'orders' },
        { db: 'shop', coll: 'users' },
      ],
    });
    expect(singleDatabase(many)).toBe('shop');
    expect(singleDatabase(parseWatch('a.x,b.y'))).toBeNull();
    expect(scopeMatch(many)).toEqual({
      $or: [
        { 'ns.db': 'shop', 'ns.coll': { $in: ['orders', 'users'] } },
        { 'to.db': 'shop', 'to.coll': { $in: ['orders', 'users'] } },
        { 'ns.db': 'shop', operationType: 'dropDatabase' },
      ],
    });
  });

  test.each([
    ['shop.orders,', /empty entry/],
    ['shop,shop.orders', /mixes a database name/],
    ['bad/db', /invalid database name/],
    ['shop.system.views', /cannot be watched/],
    ['a.b,a.b', /twice/],
  ])('rejects %s', (raw, message) => {
    expect(() => parseWatch(raw)).toThrow(UserError);
    expect(() => parseWatch(raw)).toThrow(message);
  });
});

describe('resume tokens', () => {
  test('compare as hex strings, case-insensitively', () => {
    expect(compareTokenData('8200000001', '8200000002')).toBeLessThan(0);
    expect(compareTokenData('82000000AB', '82000000ab')).toBe(0);
    expect(compareTokenData('8200000010', '820000000F')).toBeGreaterThan(0);
  });

  test('a KeyString token starting with a Timestamp yields its cluster time', () => {
    const time = tokenClusterTime({ _data: '8265A1B2C3000000072B' });
    expect(time).toEqual(new Timestamp({ t: 0x65a1b2c3, i: 7 }));
    expect(tokenClusterTime({ _data: 'zz' })).toBeNull();
  });

  test('a stored position survives the round trip and a corrupt one is a UserError naming the key', () => {
    const position = {
      token: { _data: '8265A1B2C3000000072B' },
      clusterTime: new Timestamp({ t: 1, i: 2 }),
      wallTime: new Date('2026-01-02T03:04:05Z'),
      savedAt: new Date('2026-01-02T03:04:06Z'),
    };
    expect(decodePosition(encodePosition(position), 'k')).toEqual(position);
    for (const raw of [
      'not json',
      '[]',
      '{"v":2,"token":{"_data":"82"}}',
      '{"v":1}',
      '{"v":1,"token":{"_data":"xyz"}}',
    ]) {
      expect(() => decodePosition(raw, 'changeq:ingest:default:token')).toThrow(
        /changeq:ingest:default:token" is corrupt/,
      );
    }
  });
});

describe('start markers', () => {
  test('a marker survives the round trip, is told apart from a position, and is never read as a token', () => {
    const marker = {
      startAt: new Timestamp({ t: 1_795_000_000, i: 3 }),
      savedAt: new Date('2026-01-02T03:04:06Z'),
      reason: 'changeq token set --at',
    };
    const raw = encodeStartMarker(marker);
    expect(decodeStored(raw, 'k')).toEqual({ kind: 'marker', marker });
    expect(() => decodePosition(raw, 'k')).toThrow(/is corrupt \(no token._data\)/);
    const position = {
      token: { _data: '8265A1B2C3000000072B' },
      clusterTime: new Timestamp({ t: 1, i: 2 }),
      wallTime: null,
      savedAt: new Date('2026-01-02T03:04:06Z'),
    };
    expect(decodeStored(encodePosition(position), 'k')).toEqual({ kind: 'position', position });
    expect(() => decodeStored('{"v":1,"startAtOperationTime":5}', 'k')).toThrow(/not a Timestamp/);
  });
});

describe('failure classification', () => {
  test('Redis connection losses are transient, whatever ioredis calls them', () => {
    const aborted = Object.assign(new Error('Command aborted due to connection close'), {
      name: 'AbortError',
    });
    expect(isTransientRedisError(aborted)).toBe(true);
    expect(isTransientRedisError(new Error('Connection is closed.'))).toBe(true);
    expect(
      isTransientRedisError(
        Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      ),
    ).toBe(true);
    expect(
      isTransientRedisError(
        Object.assign(new Error('LOADING Redis is loading the dataset in memory'), {
          name: 'ReplyError',
        }),
      ),
    ).toBe(true);
    expect(isTransientRedisError(new TypeError('cannot read properties of undefined'))).toBe(false);
  });
});

describe('the reader thread protocol', () => {
  // Only plain data crosses a thread boundary: what the structured clone keeps, the ingest gets.
  const clone = <T>(value: T): T => structuredClone(value);

  test('start positions survive the trip, a Timestamp included', () => {
    const token = { _data: '8263A1B2C3000000012B022C0100296E5A1004' };
    expect(decodeStart(clone(encodeStart({ startAfter: token })))).toEqual({ startAfter: token });
    const at = decodeStart(
      clone(encodeStart({ startAtOperationTime: new Timestamp({ t: 1_700_000_000, i: 7 }) })),
    );
    expect(at).toEqual({ startAtOperationTime: new Timestamp({ t: 1_700_000_000, i: 7 }) });
    expect((at as { startAtOperationTime: unknown }).startAtOperationTime).toBeInstanceOf(
      Timestamp,
    );
    expect(decodeStart(clone(encodeStart({})))).toEqual({});
  });

  test('a MATCH filter keeps its BSON values (an ObjectId stays an ObjectId)', () => {
    const match = { 'documentKey._id': new ObjectId('64b7f0c2a1b2c3d4e5f60718'), n: { $gt: 5 } };
    const back = decodeMatch(clone(encodeMatch(match)));
    expect(back).toEqual(match);
    expect((back as { 'documentKey._id': unknown })['documentKey._id']).toBeInstanceOf(ObjectId);
    expect(decodeMatch(clone(encodeMatch(null)))).toBeNull();
  });

  test('errors arrive classified: lost position, transient MongoDB, bugs', () => {
    const lost = new StreamReadError(
      clone({
        ...encodeError(new Error('history lost')),
        fromMongo: true,
        code: 286,
        lostPositionCode: 286,
      }),
    );
    expect(lostPositionCode(lost)).toBe(286);
    expect(isMongoError(lost)).toBe(true);
    expect(isTransientRedisError(lost)).toBe(false);

    const transient = new StreamReadError(
      clone({ ...encodeError(new Error('socket closed')), fromMongo: true, transient: true }),
    );
    expect(isTransientMongoError(transient)).toBe(true);
    expect(lostPositionCode(transient)).toBeNull();

    const bug = new StreamReadError(clone(encodeError(new TypeError('x is undefined'))));
    expect(bug.name).toBe('TypeError');
    expect(bug.message).toBe('x is undefined');
    expect(bug.stack).toContain('x is undefined');
    expect(isMongoError(bug)).toBe(false);
    expect(isTransientMongoError(bug)).toBe(false);
    expect(isTransientRedisError(bug)).toBe(false);
    expect(lostPositionCode(bug)).toBeNull();
  });
});
