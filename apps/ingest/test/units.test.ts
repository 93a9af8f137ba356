import { MongoServerError, MongoTopologyClosedError, ObjectId, Timestamp } from 'mongodb';
import { describe, expect, test } from 'vitest';
import {
  StreamReadError,
  isMongoError,
  isTransientMongoError,
  isTransientRedisError,
  lostPositionCode,
  encodeError,
} from '../src/failures.js';
import { decodeMatch, decodeStart, encodeMatch, encodeStart } from '../src/reader/protocol.js';

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

  test('resumable MongoDB errors are transient by label, or by code when they arrive unlabelled', () => {
    // Raised once a getMore held its cursor: the server labels it (the driver resumes it).
    const labelled = new MongoServerError({
      code: 50,
      errmsg: 'x',
      errorLabels: ['ResumableChangeStreamError'],
    });
    expect(isTransientMongoError(labelled)).toBe(true);
    // Raised before that, the same codes carry no label: the ingest reopens the stream itself.
    for (const code of [6, 91, 134, 10107, 11600, 11602, 13436]) {
      expect(isTransientMongoError(new MongoServerError({ code, errmsg: 'x' }))).toBe(true);
    }
    expect(isTransientMongoError(new MongoServerError({ code: 216, errmsg: 'x' }))).toBe(false);
    expect(isTransientMongoError(new MongoServerError({ code: 280, errmsg: 'x' }))).toBe(false);
    expect(isTransientMongoError(new MongoTopologyClosedError())).toBe(true);
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
