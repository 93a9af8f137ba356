import { ObjectId, Timestamp } from 'mongodb';
import { describe, expect, test } from 'vitest';
import {
  decodeSnapshotProgress,
  encodeSnapshotProgress,
  summarizeSnapshotProgress,
  type SnapshotProgress,
} from '../../src/codecs/snapshot-progress.js';

describe('snapshot progress', () => {
  const progress: SnapshotProgress = {
    v: 1,
    runId: 'run1',
    startAt: new Timestamp({ t: 1_700_000_000, i: 3 }),
    namespaces: ['shop.orders', 'shop.users'],
    index: 1,
    last: { id: new ObjectId('64b7f0c2a1b2c3d4e5f60718') },
    pending: { seq: 4, upper: 17 },
    seq: 4,
    copied: 3000,
    done: false,
  };

  test('survives the round trip with its BSON values (the _id bounds keep their types)', () => {
    expect(decodeSnapshotProgress(encodeSnapshotProgress(progress))).toEqual(progress);
  });

  test('is summarised for operators: the collection being copied, or none once done', () => {
    expect(summarizeSnapshotProgress(encodeSnapshotProgress(progress))).toEqual({
      namespaces: ['shop.orders', 'shop.users'],
      current: 'shop.users',
      copied: 3000,
      done: false,
      startAt: progress.startAt,
    });
    const done = summarizeSnapshotProgress(encodeSnapshotProgress({ ...progress, done: true }));
    expect(done?.current).toBeNull();
    expect(done?.done).toBe(true);
  });

  test('a summary checks every field: missing ones take defaults, unreadable text is null', () => {
    expect(summarizeSnapshotProgress('{"copied":"many","startAt":5}')).toEqual({
      namespaces: [],
      current: null,
      copied: 0,
      done: false,
      startAt: null,
    });
    expect(summarizeSnapshotProgress('not json')).toBeNull();
    expect(summarizeSnapshotProgress('null')).toBeNull();
  });
});
