// Mongos mode: the official driver sees a sharded cluster (topology type Sharded, from hello's
// msg "isdbgrid"), and a collection given a shard key reports it in its change events'
// documentKey before `_id`, as the manual's change events show for sharded collections.
import { MongoClient, type ChangeStreamDocument } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMongoServer, type RunningMongoServer } from '../../src/index.js';

describe('mongos mode', () => {
  let server: RunningMongoServer;
  let client: MongoClient;
  beforeAll(async () => {
    server = await startMongoServer({ mongos: true });
    client = new MongoClient(server.uri);
    await client.connect();
  });
  afterAll(async () => {
    await client?.close();
    await server?.stop();
  });

  it('is a mongos to the driver', async () => {
    expect(server.uri).not.toContain('replicaSet');
    const hello = await client.db('admin').command({ hello: 1 });
    expect(hello.msg).toBe('isdbgrid');
    expect(hello.setName).toBeUndefined();
    const topology = (client as unknown as { topology: { description: { type: string } } })
      .topology;
    expect(topology.description.type).toBe('Sharded');
  });

  it('adds the shard key fields to documentKey of a sharded collection, and only there', async () => {
    const admin = client.db('admin');
    await admin.command({ enableSharding: 'shop' });
    expect(
      await admin.command({ shardCollection: 'shop.orders', key: { region: 1, 'a.b': 1 } }),
    ).toMatchObject({ collectionsharded: 'shop.orders', ok: 1 });
    await expect(
      admin.command({ shardCollection: 'shop.orders', key: { other: 1 } }),
    ).rejects.toMatchObject({ code: 23 });
    await admin.command({ shardCollection: 'shop.byid', key: { _id: 'hashed' } });

    const db = client.db('shop');
    const stream = db.watch();
    const events: ChangeStreamDocument[] = [];
    const read = (async () => {
      for await (const event of stream) {
        events.push(event);
        if (events.length === 6) break;
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const orders = db.collection('orders');
    await orders.insertOne({ _id: 1 as never, region: 'eu', a: { b: 7 }, total: 3 });
    await orders.updateOne({ _id: 1 as never }, { $set: { total: 4 } });
    await orders.replaceOne({ _id: 1 as never }, { region: 'eu', total: 5 });
    await orders.deleteOne({ _id: 1 as never });
    await db.collection('plain').insertOne({ _id: 2 as never, region: 'us' });
    await db.collection('byid').insertOne({ _id: 3 as never, region: 'us' });
    await read;
    await stream.close();
    const keys = events.map((e) => (e as { documentKey: unknown }).documentKey);
    expect(keys).toEqual([
      { region: 'eu', 'a.b': 7, _id: 1 },
      { region: 'eu', 'a.b': 7, _id: 1 },
      { region: 'eu', _id: 1 }, // the replacement has no a.b
      { region: 'eu', _id: 1 }, // the deleted document's key, as it was
      { _id: 2 },
      { _id: 3 },
    ]);
    expect(Object.keys(keys[0] as object)).toEqual(['region', 'a.b', '_id']);
  });
});

describe('outside mongos mode', () => {
  it('has no sharding commands, as a mongod', async () => {
    const server = await startMongoServer();
    const client = new MongoClient(server.uri);
    try {
      await expect(
        client.db('admin').command({ shardCollection: 'shop.orders', key: { region: 1 } }),
      ).rejects.toMatchObject({ code: 59 });
    } finally {
      await client.close();
      await server.stop();
    }
  });
});
