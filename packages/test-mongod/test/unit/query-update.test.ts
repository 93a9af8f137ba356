// Filter matching and update descriptions (manual: Query Operators, Update Operators,
// Change Events — updateDescription).
import { describe, expect, it } from 'vitest';
import { Int32 } from 'bson';
import { compileFilter } from '../../src/query/match.js';
import { applyUpdate } from '../../src/update/apply.js';
import { MongoServerError } from '../../src/errors.js';

describe('compileFilter', () => {
  const m = (filter: Record<string, unknown>, doc: Record<string, unknown>): boolean =>
    compileFilter(filter)(doc);

  it('traverses arrays of documents and indexes', () => {
    expect(m({ 'a.b': 2 }, { a: [{ b: 1 }, { b: 2 }] })).toBe(true);
    expect(m({ 'a.1.b': 2 }, { a: [{ b: 1 }, { b: 2 }] })).toBe(true);
    expect(m({ 'a.0.b': 2 }, { a: [{ b: 1 }, { b: 2 }] })).toBe(false);
    expect(m({ 'a.b': { $exists: true } }, { a: [{ c: 1 }] })).toBe(false);
  });

  it('applies $ne and $nin to every element', () => {
    expect(m({ a: { $ne: 1 } }, { a: [1, 2] })).toBe(false);
    expect(m({ a: { $nin: [3] } }, { a: [1, 2] })).toBe(true);
  });

  it('rejects unknown operators with BadValue', () => {
    expect(() => compileFilter({ a: { $nope: 1 } })).toThrow(MongoServerError);
    expect(() => compileFilter({ $or: [] })).toThrow(/nonempty/);
  });
});

describe('applyUpdate updateDescription', () => {
  it('reports set, created parents, removed fields and appended array elements', () => {
    const r = applyUpdate(
      { _id: 1, a: { b: 1 }, arr: [1], x: 1 },
      { $set: { 'a.c': 2, 'n.m': 1 }, $unset: { x: 1 }, $push: { arr: 2 } },
      { inserting: false },
    );
    expect(r.doc).toEqual({ _id: 1, a: { b: 1, c: 2 }, arr: [1, 2], n: { m: 1 } });
    expect(r.description.updatedFields).toEqual({ 'a.c': 2, n: { m: 1 }, 'arr.1': 2 });
    expect(r.description.removedFields).toEqual(['x']);
  });

  it('treats setting an identical value as a no-op, but not a different numeric type', () => {
    expect(applyUpdate({ _id: 1, a: 1 }, { $set: { a: 1 } }, { inserting: false }).modified).toBe(
      false,
    );
    expect(
      applyUpdate({ _id: 1, a: 1.5 }, { $set: { a: new Int32(1) } }, { inserting: false }).modified,
    ).toBe(true);
  });

  it('does not mutate the original document', () => {
    const orig = { _id: 1, a: { b: [1] } };
    applyUpdate(orig, { $push: { 'a.b': 2 } }, { inserting: false });
    expect(orig).toEqual({ _id: 1, a: { b: [1] } });
  });
});
