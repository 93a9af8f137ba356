// Views (manual: "Views"; "create Event", "drop Event"; driver Change Streams spec unified test
// "when showExpandedEvents is true, create events on views are reported"): a view is listed with
// type 'view', refuses writes and change streams with 166 CommandNotSupportedOnView, and its
// creation and drop are change events for database and deployment streams with
// showExpandedEvents (MongoDB keeps views in system.views), without collectionUUID; they never
// invalidate a stream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MongoServerError } from 'mongodb';
import type { Document, MongoClient } from 'mongodb';
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

async function failure(p: Promise<unknown>): Promise<MongoServerError> {
  const err = await p.then(() => new Error('it succeeded')).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(MongoServerError);
  return err as MongoServerError;
}

describe('views', () => {
  it('are created and dropped as create and drop events with showExpandedEvents only', async () => {
    const d = client.db(uniqueDb('views_events'));
    await d.createCollection('src');
    const expanded = d.watch([], { ...FAST, showExpandedEvents: true });
    const plain = d.watch([], FAST);
    const onSource = d.collection('src').watch([], { ...FAST, showExpandedEvents: true });
    await Promise.all([expanded.tryNext(), plain.tryNext(), onSource.tryNext()]);
    await d.createCollection('v', { viewOn: 'src', pipeline: [{ $match: { a: 1 } }] });
    await d.dropCollection('v');
    await d.collection('src').insertOne({ a: 1 });
    const [created, dropped, inserted] = (await take(expanded, 3)) as Document[];
    expect(created?.operationType).toBe('create');
    expect(created?.ns).toEqual({ db: d.databaseName, coll: 'v' });
    expect(created?.operationDescription).toEqual({
      viewOn: 'src',
      pipeline: [{ $match: { a: 1 } }],
    });
    expect(created).not.toHaveProperty('collectionUUID');
    expect(dropped?.operationType).toBe('drop');
    expect(dropped?.ns).toEqual({ db: d.databaseName, coll: 'v' });
    expect(inserted?.operationType).toBe('insert');
    // Without showExpandedEvents, and on a collection stream, the view is not an event.
    expect(((await take(plain, 1)) as Document[])[0]?.operationType).toBe('insert');
    expect(((await take(onSource, 1)) as Document[])[0]?.operationType).toBe('insert');
    await Promise.all([expanded.close(), plain.close(), onSource.close()]);
  });

  it('are listed as views, and refuse writes and change streams with 166', async () => {
    const d = client.db(uniqueDb('views_list'));
    await d.createCollection('src');
    await d.createCollection('v', { viewOn: 'src', pipeline: [] });
    const [info] = (await d.listCollections({ name: 'v' }).toArray()) as Document[];
    expect(info?.type).toBe('view');
    expect(info?.options).toEqual({ viewOn: 'src', pipeline: [] });
    expect((info?.info as Document | undefined)?.readOnly).toBe(true);
    expect((await failure(d.collection('v').insertOne({ a: 1 }))).code).toBe(166);
    const err = await failure(
      d.command({ aggregate: 'v', pipeline: [{ $changeStream: {} }], cursor: {} }),
    );
    expect(err.code).toBe(166);
  });
});
