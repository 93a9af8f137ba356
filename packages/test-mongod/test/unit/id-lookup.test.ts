// Which filters the `_id` index serves (src/query/id-lookup.ts). The answer must be a superset of
// the matching documents' keys; "no restriction" (undefined) is always safe, a wrong key is not.
import { describe, expect, it } from 'vitest';
import { BSONRegExp, Code, Decimal128, Double, Int32, Long, ObjectId } from 'bson';
import { canonicalKey } from '../../src/bson/canonical.js';
import { idKeys } from '../../src/query/id-lookup.js';

const keys = (...values: unknown[]): Set<string> => new Set(values.map(canonicalKey));

describe('idKeys', () => {
  it('keys equality, $eq and $in on _id, equal numbers of any type to one key', () => {
    const oid = new ObjectId();
    expect(idKeys({ _id: oid })).toEqual(keys(oid));
    expect(idKeys({ _id: { $eq: 'a' } })).toEqual(keys('a'));
    expect(idKeys({ _id: { $in: [1, new Double(1), Long.fromNumber(1), 2] } })).toEqual(keys(1, 2));
    expect(idKeys({ _id: Decimal128.fromString('1.0') })).toEqual(keys(new Int32(1)));
    expect(idKeys({ _id: { $in: [] } })).toEqual(new Set());
  });

  it('keys object _ids by field order, as the _id index does', () => {
    expect(idKeys({ _id: { a: 1, b: 2 } })).toEqual(keys({ a: 1, b: 2 }));
    expect(idKeys({ _id: { a: 1, b: 2 } })).not.toEqual(keys({ b: 2, a: 1 }));
    expect(idKeys({ _id: { a: new Double(1) } })).toEqual(keys({ a: Long.fromNumber(1) }));
  });

  it('keeps other conditions for the caller and intersects $and members', () => {
    expect(idKeys({ _id: 1, status: 'x' })).toEqual(keys(1));
    expect(idKeys({ $and: [{ _id: { $in: [1, 2, 3] } }, { _id: { $in: [2, 3, 4] } }] })).toEqual(
      keys(2, 3),
    );
    expect(idKeys({ _id: { $in: [1, 2] }, $and: [{ _id: 2 }] })).toEqual(keys(2));
    expect(idKeys({ _id: { $in: [1, 2], $ne: 2 } })).toEqual(keys(1, 2));
  });

  it('answers "no restriction" for what the index cannot serve', () => {
    for (const f of [
      {},
      { x: 1 },
      { _id: { $gt: 1 } },
      { _id: /a/ },
      { _id: new BSONRegExp('a', '') },
      { _id: { $in: [1, /a/] } },
      { _id: { $eq: /a/ } },
      { _id: { $ne: 1 } },
      { _id: new Code('x') },
      { _id: { a: new Code('x') } },
      { '_id.a': 1 },
      { $or: [{ _id: 1 }, { _id: 2 }] },
      { $nor: [{ _id: 1 }] },
    ]) {
      expect(idKeys(f), JSON.stringify(f)).toBeUndefined();
    }
  });

  it('treats DBRef-shaped documents as values, not operators', () => {
    const ref = { $ref: 'c', $id: 1 };
    expect(idKeys({ _id: ref })).toEqual(keys(ref));
  });
});
