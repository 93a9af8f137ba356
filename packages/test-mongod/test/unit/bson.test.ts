// BSON comparison order and _id key equality (manual: Comparison/Sort Order).
import { describe, expect, it } from 'vitest';
import {
  Binary,
  BSONRegExp,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
} from 'bson';
import { canonicalKey } from '../../src/bson/canonical.js';
import { compareValues } from '../../src/bson/compare.js';

describe('compareValues', () => {
  it('orders types as MongoDB does', () => {
    const ordered = [
      new MinKey(),
      null,
      new Int32(1),
      'a',
      { a: 1 },
      [1],
      new Binary(Buffer.from('x')),
      new ObjectId('000000000000000000000001'),
      false,
      new Date(0),
      new Timestamp({ t: 1, i: 1 }),
      new BSONRegExp('a', ''),
      new MaxKey(),
    ];
    for (let i = 1; i < ordered.length; i++) {
      expect(compareValues(ordered[i - 1], ordered[i])).toBe(-1);
      expect(compareValues(ordered[i], ordered[i - 1])).toBe(1);
    }
  });

  it('compares numbers by value across types, exactly for large longs', () => {
    expect(compareValues(new Int32(1), new Double(1.0))).toBe(0);
    expect(compareValues(Long.fromNumber(1), Decimal128.fromString('1.0'))).toBe(0);
    expect(compareValues(new Double(1.5), Long.fromNumber(2))).toBe(-1);
    expect(compareValues(Long.fromString('9007199254740993'), new Double(9007199254740992))).toBe(
      1,
    );
    expect(compareValues(new Double(NaN), new Double(-Infinity))).toBe(-1);
  });

  it('compares documents field by field, then by length', () => {
    expect(compareValues({ a: 1 }, { a: 1, b: 1 })).toBe(-1);
    expect(compareValues({ a: 1 }, { b: 0 })).toBe(-1);
    expect(compareValues({ a: 'x' }, { a: 5 })).toBe(1);
  });

  it('compares strings by UTF-8 bytes', () => {
    expect(compareValues('Z', 'a')).toBe(-1);
    expect(compareValues('\uffff', '\u{1F600}')).toBe(-1);
  });
});

describe('canonicalKey', () => {
  it('gives numerically equal values the same key', () => {
    const keys = [
      1,
      new Double(1.0),
      Long.fromNumber(1),
      Decimal128.fromString('1'),
      Decimal128.fromString('1.000'),
      new Int32(1),
    ].map(canonicalKey);
    expect(new Set(keys).size).toBe(1);
  });

  it('keys ObjectIds by their hex, the same for equal ids and different for others', () => {
    const a = new ObjectId('65f0000000000000000000ab');
    expect(canonicalKey(a)).toBe('o65f0000000000000000000ab');
    expect(canonicalKey(new ObjectId(a.toHexString()))).toBe(canonicalKey(a));
    expect(canonicalKey(new ObjectId())).not.toBe(canonicalKey(new ObjectId()));
    expect(canonicalKey({ x: a })).toBe('{"x":o65f0000000000000000000ab}');
  });

  it('keeps different values apart', () => {
    expect(canonicalKey(new Double(0.1))).not.toBe(canonicalKey(Decimal128.fromString('0.1')));
    expect(canonicalKey('1')).not.toBe(canonicalKey(1));
    expect(canonicalKey({ a: 1, b: 2 })).not.toBe(canonicalKey({ b: 2, a: 1 }));
    expect(canonicalKey({ a: new Int32(1) })).toBe(canonicalKey({ a: new Double(1) }));
  });
});
