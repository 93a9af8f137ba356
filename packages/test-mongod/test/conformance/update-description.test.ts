// updateDescription of update events (manual: "update Event"; driver Change Streams spec unified
// tests "disambiguatedPaths" and "Test array truncation"). Updates with an aggregation pipeline
// are described by the difference between the old and new document (MongoDB's v2 oplog diff:
// changed sub-documents and arrays by their changed parts, a shortened array in truncatedArrays,
// and a whole document whose diff would be bigger than it as a replace event). Since MongoDB 6.1, with
// showExpandedEvents, disambiguatedPaths lists the parts of every path a reader could not split
// from the dotted string alone (a numeric field name after the first, or a field name containing a
// dot), array indices as integers; it is present, possibly empty, on every update event of such a
// stream, and absent without showExpandedEvents (before 8.2, which always sends it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Int32 } from 'mongodb';
import type { ChangeStreamUpdateDocument, Collection, Document, MongoClient } from 'mongodb';
import { atLeast, serverVersion, startTarget, uniqueDb } from '../helpers/target.js';
import type { Target } from '../helpers/target.js';
import { take } from '../helpers/streams.js';

let target: Target;
let client: MongoClient;
let version: [number, number, number];

beforeAll(async () => {
  target = await startTarget();
  client = await target.client();
  version = await serverVersion(client);
});
afterAll(async () => {
  await target.stop();
});

const FAST = { maxAwaitTimeMS: 100 } as const;

async function coll(prefix: string, doc: Document): Promise<Collection> {
  const d = client.db(uniqueDb(prefix));
  await d.createCollection('c');
  const c = d.collection('c');
  await c.insertOne(doc);
  return c;
}

/** The updateDescription of the event for `update`, read with BSON types kept (Int32 stays). */
async function describeUpdate(
  c: Collection,
  update: Document | Document[],
  showExpandedEvents = true,
): Promise<Document> {
  const cs = c.watch([], { ...FAST, showExpandedEvents, promoteValues: false });
  await cs.tryNext();
  await c.updateOne({ _id: 1 } as Document, update);
  const [ev] = (await take(cs, 1)) as ChangeStreamUpdateDocument[];
  await cs.close();
  expect(ev?.operationType).toBe('update');
  return ev?.updateDescription as Document;
}

describe('updateDescription.disambiguatedPaths (MongoDB 6.1+)', () => {
  it('lists a path through a numeric field name, as strings', async (t) => {
    if (!atLeast(version, [6, 1, 0])) return t.skip();
    const c = await coll('dp_numeric', { _id: 1, a: { '1': 1 } });
    const ud = await describeUpdate(c, { $set: { 'a.1': 2 } });
    expect(ud.disambiguatedPaths).toEqual({ 'a.1': ['a', '1'] });
  });

  it('gives array indices as integers', async (t) => {
    if (!atLeast(version, [6, 1, 0])) return t.skip();
    const c = await coll('dp_index', { _id: 1, a: [{ '1': 1 }] });
    const ud = await describeUpdate(c, { $set: { 'a.0.1': 2 } });
    const path = (ud.disambiguatedPaths as Document)['a.0.1'] as unknown[];
    expect(path).toHaveLength(3);
    expect(path[0]).toBe('a');
    expect(path[1]).toBeInstanceOf(Int32);
    expect((path[1] as Int32).value).toBe(0);
    expect(path[2]).toBe('1');
  });

  it('covers removed fields too', async (t) => {
    if (!atLeast(version, [6, 1, 0])) return t.skip();
    const c = await coll('dp_removed', { _id: 1, a: { '7': 1, b: 2 } });
    const ud = await describeUpdate(c, { $unset: { 'a.7': '' } });
    expect(ud.removedFields).toEqual(['a.7']);
    expect(ud.disambiguatedPaths).toEqual({ 'a.7': ['a', '7'] });
  });

  it('is empty when no path is ambiguous: plain fields, array indices, a numeric top-level field', async (t) => {
    if (!atLeast(version, [6, 1, 0])) return t.skip();
    const c = await coll('dp_plain', { _id: 1, x: { y: 1 }, arr: [1, 2], '5': 0 });
    const ud = await describeUpdate(c, { $set: { 'x.y': 2, 'arr.1': 3, '5': 1 } });
    expect(ud.disambiguatedPaths).toEqual({});
  });

  it('is absent without showExpandedEvents (before 8.2)', async (t) => {
    if (!atLeast(version, [6, 1, 0]) || atLeast(version, [8, 2, 0])) return t.skip();
    const c = await coll('dp_absent', { _id: 1, a: { '1': 1 } });
    const ud = await describeUpdate(c, { $set: { 'a.1': 2 } }, false);
    expect(ud).not.toHaveProperty('disambiguatedPaths');
  });
});

describe('updates with an aggregation pipeline (manual: Updates with Aggregation Pipeline)', () => {
  const pad = 'p'.repeat(128);

  it('report a shortened array in truncatedArrays', async () => {
    const c = await coll('pu_trunc', { _id: 1, a: 1, array: ['foo', { a: 'bar' }, 1, 2, 3] });
    const ud = await describeUpdate(c, [{ $set: { array: ['foo', { a: 'bar' }] } }], false);
    expect(ud.updatedFields).toEqual({});
    expect(ud.removedFields).toEqual([]);
    expect(ud.truncatedArrays).toEqual([{ field: 'array', newSize: new Int32(2) }]);
  });

  it('report changed, added and removed fields by their paths', async () => {
    const c = await coll('pu_paths', {
      _id: 1,
      obj: { a: 1, b: 2, pad },
      gone: 1,
      arr: [1, 2, pad],
    });
    const ud = await describeUpdate(
      c,
      [{ $set: { obj: { a: 1, b: 3, pad }, added: 'x', arr: [1, 5, pad, 7] } }, { $unset: 'gone' }],
      false,
    );
    expect(ud.updatedFields).toEqual({
      added: 'x',
      'obj.b': new Int32(3),
      'arr.1': new Int32(5),
      'arr.3': new Int32(7),
    });
    expect(ud.removedFields).toEqual(['gone']);
    expect(ud.truncatedArrays).toEqual([]);
  });

  it('list dotted field names in disambiguatedPaths (MongoDB 6.1+)', async (t) => {
    if (!atLeast(version, [6, 1, 0])) return t.skip();
    const c = await coll('pu_dotted', { _id: 1, obj: { pad } });
    await c.updateOne({ _id: 1 } as Document, [
      { $replaceWith: { $literal: { _id: 1, obj: { 'a.b': 1, pad } } } },
    ]);
    const ud = await describeUpdate(c, [
      { $replaceWith: { $literal: { _id: 1, obj: { 'a.b': 2, pad } } } },
    ]);
    expect(ud.updatedFields).toEqual({ 'obj.a.b': new Int32(2) });
    expect(ud.disambiguatedPaths).toEqual({ 'obj.a.b': ['obj', 'a.b'] });
  });

  it('are a replace event when the difference is bigger than the new document', async () => {
    const c = await coll('pu_replace', { _id: 1, a: 1, b: 2, c: 3 });
    const cs = c.watch([], FAST);
    await cs.tryNext();
    await c.updateOne({ _id: 1 } as Document, [
      { $replaceWith: { $literal: { _id: 1, x: 1, y: 2, z: 3 } } },
    ]);
    const [ev] = await take(cs, 1);
    await cs.close();
    expect(ev?.operationType).toBe('replace');
    expect((ev as { fullDocument?: unknown }).fullDocument).toEqual({ _id: 1, x: 1, y: 2, z: 3 });
  });
});
