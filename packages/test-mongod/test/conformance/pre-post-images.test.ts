// Document pre- and post-images (manual: Change Streams with Document Pre- and Post-Images;
// $changeStream fullDocument / fullDocumentBeforeChange options).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MongoServerError } from 'mongodb';
import type { Db, MongoClient } from 'mongodb';
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

type Ev = Record<string, unknown>;

async function setup(prefix: string, images: boolean): Promise<Db> {
  const d = client.db(uniqueDb(prefix));
  await d.createCollection('c', images ? { changeStreamPreAndPostImages: { enabled: true } } : {});
  await d.collection('c').insertOne({ _id: 1, v: 1 } as never);
  return d;
}

async function changes(d: Db, options: Record<string, unknown>, n: number): Promise<Ev[]> {
  const cs = d.collection('c').watch([], { maxAwaitTimeMS: 100, ...options });
  await cs.tryNext();
  await d.collection('c').updateOne({ _id: 1 } as never, { $set: { v: 2 } });
  await d.collection('c').replaceOne({ _id: 1 } as never, { v: 3 });
  await d.collection('c').deleteOne({ _id: 1 } as never);
  try {
    return (await take(cs, n)) as unknown as Ev[];
  } finally {
    await cs.close();
  }
}

describe('fullDocumentBeforeChange', () => {
  it('returns pre-images for update, replace and delete when enabled', async () => {
    const d = await setup('img_pre', true);
    const evs = await changes(d, { fullDocumentBeforeChange: 'required' }, 3);
    expect(evs.map((e) => e.fullDocumentBeforeChange)).toEqual([
      { _id: 1, v: 1 },
      { _id: 1, v: 2 },
      { _id: 1, v: 3 },
    ]);
  });

  it('is null with whenAvailable and an error with required when not enabled', async () => {
    const d = await setup('img_nopre', false);
    const evs = await changes(d, { fullDocumentBeforeChange: 'whenAvailable' }, 3);
    expect(evs.map((e) => e.fullDocumentBeforeChange)).toEqual([null, null, null]);
    const d2 = await setup('img_nopre2', false);
    const err = (await changes(d2, { fullDocumentBeforeChange: 'required' }, 1).catch(
      (e: unknown) => e,
    )) as MongoServerError;
    expect(err).toBeInstanceOf(MongoServerError);
  });

  it('is absent with off (the default)', async () => {
    const d = await setup('img_off', true);
    const evs = await changes(d, {}, 3);
    expect(evs.every((e) => !('fullDocumentBeforeChange' in e))).toBe(true);
  });
});

describe('fullDocument', () => {
  it('whenAvailable / required give the post-image of updates when enabled', async () => {
    const d = await setup('img_post', true);
    const evs = await changes(d, { fullDocument: 'required' }, 2);
    expect(evs[0]?.fullDocument).toEqual({ _id: 1, v: 2 });
    expect(evs[1]?.fullDocument).toEqual({ _id: 1, v: 3 });
  });

  it('whenAvailable gives null for updates when not enabled', async () => {
    const d = await setup('img_nopost', false);
    const evs = await changes(d, { fullDocument: 'whenAvailable' }, 1);
    expect(evs[0]?.fullDocument).toBeNull();
  });

  it('updateLookup returns the current document, or null once it is gone', async () => {
    const d = await setup('img_lookup', false);
    const evs = await changes(d, { fullDocument: 'updateLookup' }, 3);
    // The document was deleted before the events were read.
    expect(evs[0]?.operationType).toBe('update');
    expect(evs[0]?.fullDocument).toBeNull();
    expect(evs[1]?.fullDocument).toEqual({ _id: 1, v: 3 });
  });

  it('updateLookup sees the latest version while the document exists', async () => {
    const d = await setup('img_lookup2', false);
    const cs = d.collection('c').watch([], { maxAwaitTimeMS: 100, fullDocument: 'updateLookup' });
    await cs.tryNext();
    await d.collection('c').updateOne({ _id: 1 } as never, { $set: { v: 2 } });
    await d.collection('c').updateOne({ _id: 1 } as never, { $set: { v: 3 } });
    const evs = (await take(cs, 2)) as unknown as Ev[];
    await cs.close();
    expect(evs[0]?.fullDocument).toEqual({ _id: 1, v: 3 });
  });
});

// Routing keys (changeq's [routing]) read a field from the image each operation carries: both
// options at once give an update its document before and after, a delete only the one before.
describe('fullDocument and fullDocumentBeforeChange together', () => {
  it('an update carries both images, a replace both, a delete only the pre-image', async () => {
    const d = await setup('img_both', true);
    const evs = await changes(
      d,
      { fullDocument: 'required', fullDocumentBeforeChange: 'required' },
      3,
    );
    expect(evs.map((e) => [e.operationType, e.fullDocumentBeforeChange, e.fullDocument])).toEqual([
      ['update', { _id: 1, v: 1 }, { _id: 1, v: 2 }],
      ['replace', { _id: 1, v: 2 }, { _id: 1, v: 3 }],
      ['delete', { _id: 1, v: 3 }, undefined],
    ]);
    expect('fullDocument' in evs[2]!).toBe(false);
  });
});
