/**
 * Example handlers (the worker's default `--handlers`): keep a denormalised read model of
 * `shop.orders` in `shop_read.order_views`, one row per order with derived fields:
 *
 *   { _id: <order _id>, customerId, status, itemCount, total, deleted, version: <clusterTime> }
 *
 * Every write is guarded by the event's position (its clusterTime): a row only changes when the
 * event is not older than what the row already reflects, so a repeated event (at-least-once
 * delivery) or an older one (a dead letter retried late under dead_letter = "skip") is a no-op.
 * A delete leaves a tombstone (`deleted: true`) so that an older insert cannot bring the row back.
 *
 * Settings: MONGODB_URI (required), READ_MODEL_DB (default `shop_read`).
 */
import {
  MongoServerError,
  type Collection,
  type Document,
  type Filter,
  type Timestamp,
} from 'mongodb';
import {
  UserError,
  createMongoClient,
  defineHandlers,
  envReader,
  type EventOf,
  type HandlerContext,
} from '@changeq/shared';

export interface OrderView {
  _id: unknown;
  customerId: unknown;
  status: string | null;
  itemCount: number;
  total: number;
  deleted: boolean;
  version: Timestamp;
}

const env = envReader();
if (env.optionalString('MONGODB_URI') === undefined) {
  throw new UserError(
    'MONGODB_URI is not set: the example handlers keep a read model in MongoDB',
    'set MONGODB_URI, or pass --handlers with your own module',
  );
}
// Validated like the ingest's: a string the driver refuses is one line, not a MongoParseError.
const client = createMongoClient(env.mongoUri());
const views: Collection<OrderView> = client
  .db(process.env.READ_MODEL_DB || 'shop_read')
  .collection<OrderView>('order_views');

interface OrderItem {
  qty?: unknown;
  price?: unknown;
}

function num(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value !== null && typeof value === 'object' && 'toString' in value) {
    const parsed = Number(String(value));
    return Number.isFinite(parsed) ? parsed : 0;
  }
  return 0;
}

/** The derived fields of an order document. */
export function deriveOrder(order: Document): Omit<OrderView, '_id' | 'version' | 'deleted'> {
  const items: OrderItem[] = Array.isArray(order.items) ? (order.items as OrderItem[]) : [];
  let itemCount = 0;
  let total = 0;
  for (const item of items) {
    const qty = num(item.qty ?? 1);
    itemCount += qty;
    total += qty * num(item.price);
  }
  return {
    customerId: order.customerId ?? null,
    status: typeof order.status === 'string' ? order.status : null,
    itemCount,
    total: Math.round(total * 100) / 100,
  };
}

/** Applies `fields` to the row of `id` unless the row already reflects a later event. */
async function writeIfNotOlder(
  id: unknown,
  version: Timestamp,
  fields: Partial<OrderView>,
  ctx: HandlerContext,
): Promise<'written' | 'stale'> {
  try {
    const result = await views.updateOne(
      {
        _id: id,
        $or: [{ version: { $exists: false } }, { version: { $lte: version } }],
      } as Filter<OrderView>,
      { $set: { ...fields, version } },
      { upsert: true },
    );
    if (result.matchedCount === 0 && result.upsertedCount === 0) return 'stale';
    return 'written';
  } catch (error) {
    // The row exists with a newer version: the upsert's insert collides with it. Nothing to do.
    if (error instanceof MongoServerError && error.code === 11000) {
      ctx.log.debug({ id }, 'read model already reflects a later event; skipped');
      return 'stale';
    }
    throw error;
  }
}

type OrderEvent = EventOf<'insert'> | EventOf<'replace'> | EventOf<'update'> | EventOf<'snapshot'>;

async function upsertOrder(event: OrderEvent, ctx: HandlerContext) {
  const id = event.documentKey._id;
  const full = event.fullDocument;
  if (full) {
    return writeIfNotOlder(id, event.clusterTime!, { ...deriveOrder(full), deleted: false }, ctx);
  }
  // An update without fullDocument (the ingest's FULL_DOCUMENT=default): apply what changed.
  if (event.operationType !== 'update') return 'stale';
  const changed = event.updateDescription.updatedFields ?? {};
  const fields: Partial<OrderView> = {};
  if ('status' in changed)
    fields.status = typeof changed.status === 'string' ? changed.status : null;
  if ('customerId' in changed) fields.customerId = changed.customerId;
  if ('items' in changed) {
    const derived = deriveOrder({ items: changed.items });
    fields.itemCount = derived.itemCount;
    fields.total = derived.total;
  }
  if (Object.keys(fields).length === 0) return 'stale';
  return writeIfNotOlder(id, event.clusterTime!, fields, ctx);
}

async function dropViews(version: Timestamp | undefined) {
  if (version === undefined) return views.deleteMany({});
  return views.deleteMany({ version: { $lt: version } });
}

export default defineHandlers({
  'shop.orders': {
    insert: upsertOrder,
    replace: upsertOrder,
    update: upsertOrder,
    snapshot: upsertOrder,
    delete: async (event, ctx) =>
      writeIfNotOlder(event.documentKey._id, event.clusterTime!, { deleted: true }, ctx),
    drop: async (event) => dropViews(event.clusterTime),
    rename: async (event) => dropViews(event.clusterTime),
  },
  'shop.*': {
    dropDatabase: async (event) => dropViews(event.clusterTime),
  },
});

/** Called by the worker on shutdown. */
export async function close(): Promise<void> {
  await client.close();
}
