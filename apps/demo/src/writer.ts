import { MongoClient, ObjectId, type Collection } from 'mongodb';

export interface WriterOptions {
  mongodbUri: string;
  /** Operations per second, roughly. */
  rate?: number;
  /** How many documents each collection cycles through (updates and deletes hit these). */
  documents?: number;
  db?: string;
  log?: (line: string) => void;
  signal: AbortSignal;
  random?: () => number;
}

interface Order {
  _id: ObjectId;
  customer: string;
  status: 'new' | 'paid' | 'shipped';
  total: number;
  items: { sku: string; qty: number }[];
  updatedAt: Date;
}

const CUSTOMERS = ['ada', 'grace', 'linus', 'margaret', 'ken', 'barbara', 'dennis', 'frances'];
const SKUS = ['lamp', 'desk', 'chair', 'mug', 'plant', 'rug'];

/**
 * Makes a steady stream of inserts, updates, replaces and deletes in `shop.orders`,
 * `shop.customers` and `shop.inventory` (some inside transactions), so the demo always has
 * change events flowing. Resolves when `signal` aborts.
 */
export async function runWriter(options: WriterOptions): Promise<{ operations: number }> {
  const random = options.random ?? Math.random;
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const client = new MongoClient(options.mongodbUri, { appName: 'changeq-demo-writer' });
  await client.connect();
  const db = client.db(options.db ?? 'shop');
  const orders: Collection<Order> = db.collection('orders');
  const customers = db.collection<{ _id: string; orders: number; since: Date }>('customers');
  const inventory = db.collection<{ _id: string; stock: number }>('inventory');
  const live: ObjectId[] = [];
  const interval = 1000 / (options.rate ?? 20);
  const limit = options.documents ?? 200;
  let operations = 0;
  try {
    while (!options.signal.aborted) {
      const roll = random();
      const customer = pick(CUSTOMERS);
      if (live.length < limit && (roll < 0.35 || live.length < 5)) {
        const order: Order = {
          _id: new ObjectId(),
          customer,
          status: 'new',
          total: Math.round(random() * 20000) / 100,
          items: [{ sku: pick(SKUS), qty: 1 + Math.floor(random() * 3) }],
          updatedAt: new Date(),
        };
        await orders.insertOne(order);
        live.push(order._id);
        await customers.updateOne(
          { _id: customer },
          { $inc: { orders: 1 }, $setOnInsert: { since: new Date() } },
          { upsert: true },
        );
      } else if (roll < 0.75) {
        const id = pick(live);
        await orders.updateOne(
          { _id: id },
          {
            $set: { status: pick(['paid', 'shipped'] as const), updatedAt: new Date() },
            $inc: { total: 1 },
          },
        );
      } else if (roll < 0.85) {
        const id = pick(live);
        await orders.replaceOne(
          { _id: id },
          { customer, status: 'paid', total: 10, items: [], updatedAt: new Date() },
        );
      } else if (roll < 0.93) {
        // A transaction: an order and its stock move together (its events share one cluster time).
        const session = client.startSession();
        try {
          await session.withTransaction(async () => {
            const sku = pick(SKUS);
            await inventory.updateOne(
              { _id: sku },
              { $inc: { stock: -1 } },
              { upsert: true, session },
            );
            await orders.insertOne(
              {
                _id: new ObjectId(),
                customer,
                status: 'paid',
                total: 5,
                items: [{ sku, qty: 1 }],
                updatedAt: new Date(),
              },
              { session },
            );
          });
        } finally {
          await session.endSession();
        }
      } else {
        const index = Math.floor(random() * live.length);
        const [id] = live.splice(index, 1);
        if (id) await orders.deleteOne({ _id: id });
      }
      operations += 1;
      if (operations % 500 === 0) options.log?.(`writer: ${operations} operations so far`);
      await new Promise((resolve) => setTimeout(resolve, interval));
    }
  } finally {
    await client.close();
  }
  return { operations };
}
