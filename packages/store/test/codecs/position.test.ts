import { Timestamp } from 'mongodb';
import { describe, expect, test } from 'vitest';
import {
  decodePosition,
  decodeStored,
  describeLoss,
  describePosition,
  describeTokenKey,
  encodeLostRecord,
  encodePosition,
  encodeStartMarker,
  readTokenKey,
  replayTime,
} from '../../src/codecs/position.js';

describe('resume positions', () => {
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

  test('is described by its time and the start of its token', () => {
    const described = describePosition({
      token: { _data: '8265A1B2C3000000072B0229296E04' },
      clusterTime: new Timestamp({ t: 1_700_000_000, i: 1 }),
      wallTime: null,
      savedAt: new Date(),
    });
    expect(described).toBe('2023-11-14T22:13:20.000Z (token 8265A1B2C3000000072B0229…)');
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

describe('lost positions and what operators are shown', () => {
  const had = {
    kind: 'position' as const,
    position: {
      token: { _data: '8265A1B2C3000000072B' },
      clusterTime: new Timestamp({ t: 1_700_000_000, i: 2 }),
      wallTime: new Date('2023-11-14T22:13:20.500Z'),
      savedAt: new Date('2023-11-14T22:13:21Z'),
    },
  };

  test('a lost record survives the round trip, with what was found in its place', () => {
    const found = {
      kind: 'marker' as const,
      marker: {
        startAt: new Timestamp({ t: 1_600_000_000, i: 0 }),
        savedAt: new Date(0),
        reason: 'r',
      },
    };
    for (const record of [
      { had, found: null, detectedAt: new Date('2026-01-02T00:00:00Z') },
      { had, found, detectedAt: new Date('2026-01-02T00:00:00Z') },
    ]) {
      expect(decodeStored(encodeLostRecord(record), 'k')).toEqual({ kind: 'lost', record });
    }
    expect(describeLoss({ had, found: null, detectedAt: new Date('2026-01-02T00:00:00Z') })).toBe(
      'held the resume token at 2023-11-14T22:13:20.500Z (token 8265A1B2C3000000072B…), and on 2026-01-02T00:00:00.000Z nothing',
    );
    // A replay from the lost place re-reads its whole second.
    expect(replayTime(had)).toEqual(new Date('2023-11-14T22:13:20.000Z'));
  });

  test('readTokenKey shows anything the key holds, and never refuses it', () => {
    expect(readTokenKey({ type: 'none', raw: null }, 'k')).toEqual({ kind: 'none' });
    expect(readTokenKey({ type: 'hash', raw: null }, 'k')).toEqual({
      kind: 'corrupt',
      type: 'hash',
      raw: null,
      problem: expect.stringMatching(/"k" is corrupt \(it is a Redis hash, not a string\)/),
    });
    expect(readTokenKey({ type: 'string', raw: 'oops' }, 'k')).toMatchObject({
      kind: 'corrupt',
      raw: 'oops',
      problem: expect.stringMatching(/not Extended JSON/),
    });
    const lost = encodeLostRecord({ had, found: null, detectedAt: new Date(0) });
    expect(describeTokenKey(readTokenKey({ type: 'string', raw: lost }, 'k'))).toMatch(
      /^the record of a lost position \(the resume token at 2023-11-14/,
    );
    expect(describeTokenKey(readTokenKey({ type: 'list', raw: null }, 'k'))).toBe(
      'a Redis list (not a token)',
    );
  });
});
