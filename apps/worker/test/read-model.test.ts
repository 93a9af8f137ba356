/**
 * The example handlers against the project's MongoDB-compatible server: real change events from
 * a change stream (through the job codec, as the worker gets them) keep shop_read.order_views up
 * to date, and a repeated or older event changes nothing.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MongoClient, type ChangeStreamDocument, type Collection, type Document } from 'mongodb';
import { startMongo, type RunningMongo } from '@changeq/stack';
import {
  createLogger,
  decodeEvent,
  documentIdentity,
  encodeEvent,
  type ChangeEvent,
  type HandlerContext,
} from '@changeq/shared';
import { loadHandlers, type LoadedHandlers } from '../src/handlers/load.js';
import { APP_DIR } from './helpers/process.js';

describe('example read-model handlers', () => {
  let mongo: RunningMongo;
  let client: MongoClient;
  let handlers: LoadedHandlers;
  let orders: Collection;
  let views: Collection;
  const log = createLogger({ name: 'test', level: 'silent' });

  beforeAll(async () => {
    mongo = await startMongo();
    process.env.MONGODB_URI = mongo.uri;
    client = new MongoClient(mongo.uri);
    orders = client.db('shop').collection('orders');
    views = client.db('shop_read').collection('order_views');
    handlers = await loadHandlers(join(APP_DIR, 'dist/examples/read-model.js'));
  });
  afterAll(async () => {
    await handlers?.close();
    await client?.close();
    await mongo?.stop();
  });

  /** What the worker does with an event: through the codec, then the handler table. */
  async function handle(event: ChangeStreamDocument | ChangeEvent, attempt = 1) {
    const ns = 'ns' in event && event.ns ? event.ns : { db: '', coll: undefined };
    const nsName = 'coll' in ns && ns.coll ? `${ns.db}.${ns.coll}` : ns.db;
    const id = 'documentKey' in event ? (event.documentKey as { _id: unknown })._id : undefined;
    const data = encodeEvent(event, {
      ns: nsName,
      op: event.operationType,
      doc: id === undefined ? null : documentIdentity(nsName, id),
    });
    const ctx: HandlerContext = {
      attempt,
      worker: 'alpha',
      idempotencyKey: 'k',
      jobId: 'k',
      log,
      signal: new AbortController().signal,
    };
    const outcome = handlers.dispatch(decodeEvent(data), ctx);
    return outcome.matched ? await outcome.result : 'no handler';
  }

  async function next(stream: { next(): Promise<ChangeStreamDocument> }, count: number) {
    const events: ChangeStreamDocument[] = [];
    while (events.length < count) events.push(await stream.next());
    return events;
  }

  const view = async (id: unknown) => {
    const row = (await views.findOne({ _id: id } as Document)) as Document | null;
    if (row === null) return null;
    const { version: _version, ...rest } = row;
    return rest;
  };

  it('keeps one row per order with derived fields, ignoring repeated and older events', async () => {
    const changes = orders.watch([], { fullDocument: 'updateLookup' });
    const stream = changes;
    expect(await changes.tryNext()).toBeNull(); // opens the stream before the writes
    await orders.insertOne({
      _id: 'A' as never,
      customerId: 'c1',
      status: 'new',
      items: [
        { qty: 2, price: 10 },
        { qty: 1, price: 5.5 },
      ],
    });
    await orders.updateOne({ _id: 'A' as never }, { $set: { status: 'paid' } });
    await orders.insertOne({ _id: 'B' as never, customerId: 'c2', status: 'new', items: [] });
    await orders.replaceOne(
      { _id: 'B' as never },
      { customerId: 'c2', status: 'open', items: [{ qty: 3, price: 2 }] },
    );
    await orders.deleteOne({ _id: 'A' as never });
    const events = await next(stream, 5);
    expect(events.map((e) => e.operationType)).toEqual([
      'insert',
      'update',
      'insert',
      'replace',
      'delete',
    ]);

    for (const event of events) await handle(event);
    expect(await view('A')).toMatchObject({ _id: 'A', deleted: true, status: 'paid', total: 25.5 });
    expect(await view('B')).toEqual({
      _id: 'B',
      customerId: 'c2',
      status: 'open',
      itemCount: 3,
      total: 6,
      deleted: false,
    });

    // At-least-once: the same event again, and an older one (the insert of A after its delete).
    const before = await views.find().sort({ _id: 1 }).toArray();
    await handle(events[4]!, 2);
    await handle(events[0]!, 2);
    await handle(events[3]!, 2);
    expect(await views.find().sort({ _id: 1 }).toArray()).toEqual(before);

    // An update without fullDocument (the ingest's default) applies the changed fields.
    await orders.updateOne({ _id: 'B' as never }, { $set: { items: [{ qty: 1, price: 4 }] } });
    const [update] = await next(stream, 1);
    const bare = { ...update } as Document;
    delete bare.fullDocument;
    await handle(bare as ChangeStreamDocument);
    expect(await view('B')).toMatchObject({ itemCount: 1, total: 4, status: 'open' });

    // Events of other namespaces have no handler: a no-op.
    expect(
      await handle({
        ...events[2]!,
        ns: { db: 'crm', coll: 'leads' },
      } as ChangeStreamDocument),
    ).toBe('no handler');

    // Dropping the collection clears the read model of everything older than the drop.
    await orders.drop();
    const [drop] = await next(stream, 1);
    expect(drop?.operationType).toBe('drop');
    await handle(drop!);
    expect(await views.countDocuments()).toBe(0);
    await changes.close();
  });
});
