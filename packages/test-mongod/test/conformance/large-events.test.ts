// Change events larger than a BSON document may be (manual: "Large Change Stream Events";
// $changeStreamSplitLargeEvent, MongoDB 7.0 and 6.0.9+; driver Change Streams spec prose test 19):
// with the stage last in the pipeline, such an event arrives as fragments, each with
// splitEvent {fragment, of} and its own resume token, and a stream resumed from a fragment's token
// continues with the next fragment; without the stage the stream fails with BSONObjectTooLarge.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MongoServerError } from 'mongodb';
import type { ChangeStream, Collection, Document, MongoClient, ResumeToken } from 'mongodb';
import { atLeast, cursorId, serverVersion, startTarget, uniqueDb } from '../helpers/target.js';
import type { Target } from '../helpers/target.js';
import { take } from '../helpers/streams.js';

let target: Target;
let client: MongoClient;
let supported = false;

beforeAll(async () => {
  target = await startTarget();
  client = await target.client();
  supported = atLeast(await serverVersion(client), [6, 0, 9]);
});
afterAll(async () => {
  await target.stop();
});

const FAST = { maxAwaitTimeMS: 100 } as const;
const MB = 1024 * 1024;
const SPLIT = { $changeStreamSplitLargeEvent: {} };

/** A collection with pre-images holding one 10 MB document, and a stream opened before its update. */
async function largeUpdate(
  prefix: string,
  pipeline: Document[],
): Promise<{ c: Collection; cs: ChangeStream }> {
  const d = client.db(uniqueDb(prefix));
  await d.createCollection('c', { changeStreamPreAndPostImages: { enabled: true } });
  const c = d.collection('c');
  await c.insertOne({ _id: 1, value: 'q'.repeat(10 * MB) } as Document);
  const cs = c.watch(pipeline, { ...FAST, fullDocumentBeforeChange: 'required' });
  await cs.tryNext();
  // The update event carries the old value (pre-image) and the new one (updatedFields): ~20 MB.
  await c.updateOne({ _id: 1 } as Document, { $set: { value: 'z'.repeat(10 * MB) } });
  return { c, cs };
}

async function failure(p: Promise<unknown>): Promise<MongoServerError> {
  const err = await p.then(() => new Error('it succeeded')).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(MongoServerError);
  return err as MongoServerError;
}

describe('$changeStreamSplitLargeEvent', () => {
  it('splits an event over 16 MB into fragments that together are the event', async (t) => {
    if (!supported) return t.skip();
    const { cs } = await largeUpdate('split', [SPLIT]);
    const [one, two] = (await take(cs, 2, 30_000)) as Document[];
    await cs.close();
    expect(one?.splitEvent).toEqual({ fragment: 1, of: 2 });
    expect(two?.splitEvent).toEqual({ fragment: 2, of: 2 });
    const first = (one?._id as { _data: string })._data;
    const second = (two?._id as { _data: string })._data;
    expect(first < second).toBe(true);
    // Smaller fields first: the first fragment has the event's small fields.
    expect(one?.operationType).toBe('update');
    expect(one?.documentKey).toEqual({ _id: 1 });
    const merged: Document = { ...one, ...two };
    expect((merged.fullDocumentBeforeChange as Document).value).toBe('q'.repeat(10 * MB));
    expect((merged.updateDescription as Document).updatedFields).toEqual({
      value: 'z'.repeat(10 * MB),
    });
  }, 60_000);

  it('resumes after a fragment with the next fragment; without the stage that token is refused', async (t) => {
    if (!supported) return t.skip();
    const { c, cs } = await largeUpdate('split_resume', [SPLIT]);
    const [one, two] = (await take(cs, 2, 30_000)) as Document[];
    await cs.close();
    const resumed = c.watch([SPLIT], {
      ...FAST,
      fullDocumentBeforeChange: 'required',
      resumeAfter: one?._id as ResumeToken,
    });
    const [next] = (await take(resumed, 1, 30_000)) as Document[];
    await resumed.close();
    expect(next?.splitEvent).toEqual({ fragment: 2, of: 2 });
    expect(next?._id).toEqual(two?._id);
    const err = await failure(
      c
        .aggregate([{ $changeStream: { resumeAfter: one?._id } }], { cursor: {} } as Document)
        .toArray(),
    );
    expect(err.code).toBe(280);
  }, 60_000);

  it('refuses to resume from a fragment when the resumed pipeline does not split that event (280)', async (t) => {
    if (!supported) return t.skip();
    const { c, cs } = await largeUpdate('split_nomore', [SPLIT]);
    const [one] = (await take(cs, 2, 30_000)) as Document[];
    await cs.close();
    const resumed = c.watch([{ $project: { operationType: 1 } }, SPLIT], {
      ...FAST,
      fullDocumentBeforeChange: 'required',
      resumeAfter: one?._id as ResumeToken,
    });
    const err = (await take(resumed, 1, 30_000).catch((e: unknown) => e)) as MongoServerError;
    await resumed.close();
    expect(err).toBeInstanceOf(MongoServerError);
    expect(err.code).toBe(280);
  }, 60_000);

  it('delivers fragments one batch at a time with their own tokens as postBatchResumeToken', async (t) => {
    if (!supported) return t.skip();
    const d = client.db(uniqueDb('split_batches'));
    await d.createCollection('c', { changeStreamPreAndPostImages: { enabled: true } });
    await d.collection('c').insertOne({ _id: 1, value: 'q'.repeat(10 * MB) } as Document);
    const agg = await d.command({
      aggregate: 'c',
      pipeline: [{ $changeStream: { fullDocumentBeforeChange: 'required' } }, SPLIT],
      cursor: {},
    });
    await d
      .collection('c')
      .updateOne({ _id: 1 } as Document, { $set: { value: 'z'.repeat(10 * MB) } });
    const seen: Document[] = [];
    for (let i = 0; i < 10 && seen.length < 2; i++) {
      const more = await d.command({
        getMore: cursorId(agg),
        collection: 'c',
        batchSize: 1,
        maxTimeMS: 1000,
      });
      const batch = more.cursor.nextBatch as Document[];
      for (const ev of batch) {
        expect(more.cursor.postBatchResumeToken).toEqual(ev._id);
        seen.push(ev);
      }
    }
    await d.command({ killCursors: 'c', cursors: [cursorId(agg)] });
    expect(seen.map((e) => e.splitEvent)).toEqual([
      { fragment: 1, of: 2 },
      { fragment: 2, of: 2 },
    ]);
  }, 60_000);

  it('fails the stream with BSONObjectTooLarge (10334) without the stage', async (t) => {
    if (!supported) return t.skip();
    const { cs } = await largeUpdate('split_none', []);
    const err = (await take(cs, 1, 30_000).catch((e: unknown) => e)) as MongoServerError;
    await cs.close();
    expect(err).toBeInstanceOf(MongoServerError);
    expect(err.code).toBe(10334);
  }, 60_000);

  it('fails when a single field cannot fit in a fragment (7182500)', async (t) => {
    if (!supported) return t.skip();
    const { cs } = await largeUpdate('split_unsplittable', [
      { $project: { both: ['$fullDocumentBeforeChange', '$updateDescription'] } },
      SPLIT,
    ]);
    const err = (await take(cs, 1, 30_000).catch((e: unknown) => e)) as MongoServerError;
    await cs.close();
    expect(err).toBeInstanceOf(MongoServerError);
    expect(err.code).toBe(7182500);
  }, 60_000);

  it('must be last (7182802) and take an empty document (7182800)', async (t) => {
    if (!supported) return t.skip();
    const d = client.db(uniqueDb('split_misplaced'));
    await d.createCollection('c');
    const open = (pipeline: Document[]) =>
      failure(
        d.command({ aggregate: 'c', pipeline: [{ $changeStream: {} }, ...pipeline], cursor: {} }),
      );
    expect((await open([SPLIT, { $match: { x: 1 } }])).code).toBe(7182802);
    expect((await open([{ $changeStreamSplitLargeEvent: { a: 1 } }])).code).toBe(7182800);
    // Outside a change stream it is IllegalOperation.
    const outside = await failure(d.command({ aggregate: 'c', pipeline: [SPLIT], cursor: {} }));
    expect(outside.code).toBe(20);
    // Small events pass through unchanged, without splitEvent.
    const cs = d.collection('c').watch([SPLIT], FAST);
    await cs.tryNext();
    await d.collection('c').insertOne({ small: true });
    const [ev] = (await take(cs, 1)) as Document[];
    await cs.close();
    expect(ev?.operationType).toBe('insert');
    expect(ev).not.toHaveProperty('splitEvent');
  });
});
