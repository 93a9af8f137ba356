// What this server does not implement is refused with an error naming it and the feature, never
// accepted and then ignored (README "Not supported"). These refusals are this server's own, so
// they are checked here rather than in the conformance suite, which also runs against MongoDB.
import { describe, expect, it } from 'vitest';
import { MongoServerError } from 'mongodb';
import type { Db, Document } from 'mongodb';
import { useTestResources } from '../helpers/resources.js';

const { start } = useTestResources();

async function refusal(run: Promise<unknown>): Promise<MongoServerError> {
  const err = await run.then(() => new Error('it succeeded')).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(MongoServerError);
  expect((err as Error).message).toContain('changeq test-mongod');
  return err as MongoServerError;
}

const stream = (d: Db, pipeline: Document[]) => d.command({ aggregate: 'c', pipeline, cursor: {} });

describe('refused, naming the test server', () => {
  it('change stream options it does not implement, when true', async () => {
    const { c } = await start({});
    const d = c.db('u');
    await d.createCollection('c');
    for (const opt of [
      'showSystemEvents',
      'showRawUpdateDescription',
      'allowToRunOnConfigDB',
      'allowToRunOnSystemNS',
    ]) {
      const err = await refusal(stream(d, [{ $changeStream: { [opt]: true } }]));
      expect(err.message).toContain(opt);
      // false is what they mean when absent: accepted.
      await stream(d, [{ $changeStream: { [opt]: false } }]);
    }
    // A replica set has no chunk migrations, so showMigrationEvents changes nothing.
    await stream(d, [{ $changeStream: { showMigrationEvents: true } }]);
  });

  it('$redact after $changeStream', async () => {
    const { c } = await start({});
    const d = c.db('u');
    await d.createCollection('c');
    const err = await refusal(stream(d, [{ $changeStream: {} }, { $redact: '$$KEEP' }]));
    expect(err.message).toContain('$redact');
  });

  it('collations other than simple, on commands, statements and new collections', async () => {
    const { c } = await start({});
    const d = c.db('u');
    await d.createCollection('c');
    const fr = { locale: 'fr' };
    await refusal(d.collection('c').find({}, { collation: fr }).toArray());
    await refusal(
      d.command({
        aggregate: 'c',
        pipeline: [{ $changeStream: {} }, { $match: { 'fullDocument.s': 'é' } }],
        cursor: {},
        collation: fr,
      }),
    );
    await refusal(d.collection('c').updateOne({}, { $set: { a: 1 } }, { collation: fr }));
    await refusal(d.collection('c').deleteMany({}, { collation: fr }));
    await refusal(d.createCollection('d', { collation: fr }));
    // The simple collation is this server's own, so it is accepted.
    await d
      .collection('c')
      .find({}, { collation: { locale: 'simple' } })
      .toArray();
  });

  it('reading through a view, changing or renaming one', async () => {
    const { c } = await start({});
    const d = c.db('u');
    await d.collection('src').insertOne({ a: 1 });
    await d.createCollection('v', { viewOn: 'src', pipeline: [] });
    await refusal(d.collection('v').find({}).toArray());
    await refusal(
      d
        .collection('v')
        .aggregate([{ $match: {} }])
        .toArray(),
    );
    await refusal(d.collection('v').countDocuments());
    await refusal(d.command({ collMod: 'v', viewOn: 'src', pipeline: [{ $match: { a: 1 } }] }));
    await refusal(d.collection('v').rename('w'));
  });
});
