import { Decimal128, MongoServerError, ObjectId, Timestamp, UUID } from 'mongodb';
import { describe, expect, test } from 'vitest';
import { UserError } from '@changeq/shared';
import { PositionChangedError } from '@changeq/store';
import { classifyFailure, decide, type Failure } from '../src/failure-policy.js';
import { ReadError } from '../src/ports.js';
import {
  decodeMatch,
  decodeSnapshotBatch,
  decodeSnapshotRequest,
  decodeStart,
  encodeMatch,
  encodeSnapshotBatch,
  encodeSnapshotRequest,
  encodeStart,
} from '../src/reader/protocol.js';

const ready = { status: 'ready' };
const down = { status: 'reconnecting' };
const context = { acceptGap: false, since: '2026-11-22T08:00:00.000Z (token 8263…)' };

describe('failure classification', () => {
  test('Redis connection losses are transient, whatever ioredis calls them', () => {
    const failure = (error: unknown, connection = down) => classifyFailure(error, connection);
    // A plain Error is how ioredis fails the commands of a closed connection ("Connection is
    // closed."): Redis' only while the connection is not ready.
    expect(failure(new Error('Connection is closed.'))).toEqual({
      of: 'redis',
      kind: 'unavailable',
    });
    expect(failure(new Error('Connection is closed.'), ready)).toEqual({ of: 'bug' });
    expect(
      failure(
        Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      ),
    ).toEqual({ of: 'redis', kind: 'unavailable' });
    expect(failure(new TypeError('cannot read properties of undefined'))).toEqual({ of: 'bug' });
    expect(failure(new PositionChangedError('k'))).toEqual({
      of: 'redis',
      kind: 'position-changed',
    });
    expect(failure(new UserError('bad', 'fix'))).toEqual({ of: 'operator' });
  });

  test('errors from the reader arrive classified: lost position, transient MongoDB, bugs', () => {
    expect(
      classifyFailure(new ReadError('history lost', { kind: 'unresumable', code: 286 }), ready),
    ).toEqual({ of: 'mongodb', kind: 'unresumable', code: 286 });
    expect(classifyFailure(new ReadError('socket closed', { kind: 'transient' }), ready)).toEqual({
      of: 'mongodb',
      kind: 'transient',
    });
    const bug = new ReadError('x is undefined', null, { name: 'TypeError', stack: 'TypeError: x' });
    expect(bug.name).toBe('TypeError');
    expect(bug.stack).toContain('TypeError: x');
    expect(classifyFailure(bug, down)).toEqual({ of: 'bug' });
  });
});

describe('the failure policy', () => {
  const error = new MongoServerError({ code: 286, errmsg: 'history gone' });
  const stopWith = (failure: Failure, ctx = context) => {
    const decision = decide(failure, error, ctx);
    if (decision.action !== 'stop') throw new Error(`expected a stop, got ${decision.action}`);
    return decision.error as UserError;
  };

  test('retries MongoDB from the stored position, and Redis after reading the start again', () => {
    expect(decide({ of: 'mongodb', kind: 'transient' }, error, context)).toEqual({
      action: 'retry',
      reload: false,
      what: 'MongoDB is unavailable',
    });
    for (const kind of ['unavailable', 'full', 'position-changed'] as const) {
      expect(decide({ of: 'redis', kind }, error, context)).toMatchObject({
        action: 'retry',
        reload: true,
      });
    }
    expect(decide({ of: 'redis', kind: 'full' }, error, context)).toMatchObject({
      what: expect.stringMatching(/^Redis is full/),
    });
  });

  test('stops on a bug, a refusal and anything the operator must fix', () => {
    for (const failure of [
      { of: 'bug' },
      { of: 'operator' },
      { of: 'redis', kind: 'refused' },
      { of: 'mongodb', kind: 'refused' },
    ] as const) {
      expect(decide(failure, error, context)).toEqual({ action: 'stop', error });
    }
  });

  test('each unresumable code has its own words and ways on; --accept-gap only skips lost history', () => {
    const lost = stopWith({ of: 'mongodb', kind: 'unresumable', code: 286 });
    expect(lost.problem).toMatch(
      /resume point \(2026-11-22T08:00:00\.000Z .*\) is no longer in MongoDB's oplog \(ChangeStreamHistoryLost 286: history gone\)/,
    );
    expect(lost.fix).toMatch(/changeq resync.*--accept-gap/);

    const invalid = stopWith({ of: 'mongodb', kind: 'unresumable', code: 260 });
    expect(invalid.problem).toMatch(/cannot use the stored resume token .*InvalidResumeToken 260/);
    expect(invalid.problem).toMatch(/damaged, or was not made by this deployment/);
    expect(invalid.problem).not.toMatch(/oplog/);
    expect(invalid.fix).toMatch(/REDIS_URL, QUEUE_PREFIX and INGEST_ID.*changeq token show/);

    const fatal = stopWith({ of: 'mongodb', kind: 'unresumable', code: 280 });
    expect(fatal.problem).toMatch(/ChangeStreamFatalError 280/);
    expect(fatal.problem).toMatch(/not in its history .*changed an event's _id/);
    expect(fatal.problem).not.toMatch(/oplog/);

    const gap = { ...context, acceptGap: true };
    expect(decide({ of: 'mongodb', kind: 'unresumable', code: 286 }, error, gap)).toEqual({
      action: 'accept-gap',
    });
    for (const code of [260, 280] as const) {
      expect(decide({ of: 'mongodb', kind: 'unresumable', code }, error, gap).action).toBe('stop');
    }
    const large = stopWith({ of: 'mongodb', kind: 'event-too-large' }, gap);
    expect(large.problem).toMatch(
      /larger than 16 MB \(BSONObjectTooLarge\) and the stream does not split it/,
    );
    expect(large.fix).toMatch(
      /SPLIT_LARGE_EVENTS=true .*MongoDB 7\.0 or 6\.0\.9.*FULL_DOCUMENT.*PIPELINE/,
    );
    const unsplittable = stopWith({ of: 'mongodb', kind: 'event-unsplittable' });
    expect(unsplittable.problem).toMatch(/one of its fields alone exceeds a fragment/);
    expect(unsplittable.fix).toMatch(/FULL_DOCUMENT.*PIPELINE/);
    const unknown = stopWith({
      of: 'mongodb',
      kind: 'stage-unsupported',
      message: 'Unrecognized pipeline stage name',
    });
    expect(unknown.problem).toMatch(
      /Unrecognized pipeline stage name; .*\$changeStreamSplitLargeEvent, which needs MongoDB 7\.0 or 6\.0\.9\+/,
    );
    expect(unknown.fix).toMatch(/upgrade MongoDB, or set SPLIT_LARGE_EVENTS=false/);
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

  test("a snapshot batch's _id bounds keep their BSON types both ways", () => {
    for (const id of [
      new ObjectId('64b7f0c2a1b2c3d4e5f60718'),
      new UUID('00000000-0000-4000-8000-000000000005'),
      new Date(1_700_000_000_005),
      { k: 5, n: Decimal128.fromString('5.5') },
      's1',
    ]) {
      const request = {
        runId: 'r',
        startAt: new Timestamp({ t: 1_700_000_000, i: 2 }),
        ns: 'snap.one',
        seq: 3,
        after: { id },
        upTo: null,
        limit: 5,
      };
      const back = decodeSnapshotRequest(clone(encodeSnapshotRequest(request)));
      expect(back.startAt).toEqual(request.startAt);
      expect(back.upTo).toBeNull();
      expect(JSON.stringify(back.after)).toBe(JSON.stringify(request.after));
      expect(Object.getPrototypeOf(back.after!.id)).toBe(Object.getPrototypeOf(id));
      const batch = decodeSnapshotBatch(
        clone(encodeSnapshotBatch({ jobs: [], count: 1, last: { id } })),
      );
      expect(Object.getPrototypeOf(batch.last!.id)).toBe(Object.getPrototypeOf(id));
    }
  });
});
