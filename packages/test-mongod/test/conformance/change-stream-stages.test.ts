// What may follow $changeStream, and what each answers when misused (manual: "Modify Change
// Stream Output"; driver Change Streams spec unified tests "change-streams-errors" and "Test
// server error on projecting out _id"): stages are parsed first (an unknown name is 40324
// "Unrecognized pipeline stage name"), then validated (a known stage a change stream does not
// allow is 20 IllegalOperation); a stage that removes or changes the resume token _id makes the
// stream fail with 280 ChangeStreamFatalError, labelled NonResumableChangeStreamError.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MongoServerError } from 'mongodb';
import type { Db, Document, MongoClient } from 'mongodb';
import { startTarget, uniqueDb } from '../helpers/target.js';
import type { Target } from '../helpers/target.js';
import { take } from '../helpers/streams.js';

let target: Target;
let client: MongoClient;

beforeAll(async () => {
  target = await startTarget();
  client = await target.client();
});
afterAll(async () => {
  await target.stop();
});

const FAST = { maxAwaitTimeMS: 100 } as const;

async function open(d: Db, pipeline: Document[]): Promise<MongoServerError> {
  const err = await d
    .command({ aggregate: 'c', pipeline, cursor: {} })
    .then(() => new Error('the aggregate succeeded'))
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(MongoServerError);
  return err as MongoServerError;
}

describe('stages after $changeStream', () => {
  it('an unknown stage is 40324 "Unrecognized pipeline stage name"', async () => {
    const d = client.db(uniqueDb('st_unknown'));
    await d.createCollection('c');
    const err = await open(d, [{ $changeStream: {} }, { $unsupported: 'foo' }]);
    expect(err.code).toBe(40324);
    expect(err.message).toBe("Unrecognized pipeline stage name: '$unsupported'");
    // Unknown names are found while parsing, before any other stage is validated.
    const first = await open(d, [{ $changeStream: {} }, { $group: { _id: 1 } }, { $nope: 1 }]);
    expect(first.code).toBe(40324);
  });

  it('a known stage a change stream does not allow is 20 IllegalOperation', async () => {
    const d = client.db(uniqueDb('st_illegal'));
    await d.createCollection('c');
    for (const stage of [{ $group: { _id: null } }, { $sort: { a: 1 } }, { $limit: 1 }]) {
      const err = await open(d, [{ $changeStream: {} }, stage]);
      expect(err.code).toBe(20);
      expect(err.message).toBe(
        `${Object.keys(stage)[0]} is not permitted in a $changeStream pipeline`,
      );
    }
  });

  it('$changeStream anywhere but first is 40602', async () => {
    const d = client.db(uniqueDb('st_first'));
    await d.createCollection('c');
    const err = await open(d, [{ $changeStream: {} }, { $changeStream: {} }]);
    expect(err.code).toBe(40602);
  });

  it('boolean options of the wrong type are 14 TypeMismatch', async () => {
    const d = client.db(uniqueDb('st_types'));
    await d.createCollection('c');
    const err = await open(d, [{ $changeStream: { showExpandedEvents: 'yes' } }]);
    expect(err.code).toBe(14);
  });

  it('projecting out _id fails the stream with 280 ChangeStreamFatalError, NonResumableChangeStreamError', async () => {
    const d = client.db(uniqueDb('st_noid'));
    await d.createCollection('c');
    const cs = d.collection('c').watch([{ $project: { _id: 0 } }], FAST);
    await cs.tryNext();
    await d.collection('c').insertOne({ a: 1 });
    const err = (await take(cs, 1).catch((e: unknown) => e)) as MongoServerError;
    await cs.close();
    expect(err).toBeInstanceOf(MongoServerError);
    expect(err.code).toBe(280);
    expect(err.codeName).toBe('ChangeStreamFatalError');
    expect(err.hasErrorLabel('NonResumableChangeStreamError')).toBe(true);
    expect(err.hasErrorLabel('ResumableChangeStreamError')).toBe(false);
  });

  it('$match takes $expr, e.g. $regexMatch over the namespace (a missing ns.coll is no match)', async () => {
    const d = client.db(uniqueDb('st_expr'));
    const byName = {
      $expr: {
        $regexMatch: {
          input: { $concat: ['$ns.db', '.', '$ns.coll'] },
          regex: '\\.ord',
          options: 'i',
        },
      },
    };
    const cs = d.watch([{ $match: byName }], FAST);
    await cs.tryNext();
    await d.collection('Orders').insertOne({ _id: 1 } as Document);
    await d.collection('users').insertOne({ _id: 2 } as Document);
    await d.collection('orders_2026').insertOne({ _id: 3 } as Document);
    const evs = (await take(cs, 2)) as Document[];
    await cs.close();
    expect(evs.map((e) => `${e.ns.coll}:${e.documentKey._id}`)).toEqual([
      'Orders:1',
      'orders_2026:3',
    ]);
    const bad = await open(d, [
      { $changeStream: {} },
      { $match: { $expr: { $regexMatch: { input: '$ns.db', regex: 'a', options: 'q' } } } },
    ]).catch((e: unknown) => e as MongoServerError);
    // MongoDB checks the options when it parses the stage (51108).
    expect(bad.code).toBe(51108);
  });

  it('accepts a collation (it applies to the stream’s own stages; updateLookup uses the collection’s)', async () => {
    const d = client.db(uniqueDb('st_collation'));
    await d.createCollection('c');
    const collation = { locale: 'en', strength: 2, maxVariable: 'punct' };
    const cs = d.collection('c').watch([], { ...FAST, collation, fullDocument: 'updateLookup' });
    await cs.tryNext();
    await d.collection('c').insertOne({ _id: 'e', v: 0 } as Document);
    await d.collection('c').insertOne({ _id: 'E', v: 1 } as Document);
    await d.collection('c').updateOne({ _id: 'e' } as Document, { $set: { v: 2 } });
    const evs = (await take(cs, 3)) as Document[];
    await cs.close();
    expect(evs.map((e) => e.operationType)).toEqual(['insert', 'insert', 'update']);
    // 'e' and 'E' are equal at strength 2, but the lookup is by the collection's (simple) one.
    expect(evs[2]?.fullDocument).toEqual({ _id: 'e', v: 2 });
    // A malformed collation is refused as MongoDB refuses it.
    const bad = (await d
      .command({
        aggregate: 'c',
        pipeline: [{ $changeStream: {} }],
        cursor: {},
        collation: { strength: 1 },
      })
      .catch((e: unknown) => e)) as MongoServerError;
    expect(bad).toBeInstanceOf(MongoServerError);
  });
});
