// Sharding commands of a mongos (mongos mode only): enableSharding and shardCollection record a
// collection's shard key, which its change events' documentKey then carries beside `_id`. The
// data itself stays on this one server: no chunks, no balancer, no shards to list.
import type { Doc } from '../bson/types.js';
import { isPlainObject, toNumber } from '../bson/types.js';
import { MongoServerError } from '../errors.js';
import type { CommandContext, CommandSpec } from './context.js';

/** Outside mongos mode the sharding commands do not exist, as on a mongod. */
function requireMongos(ctx: CommandContext): void {
  if (!ctx.state.mongos) throw new MongoServerError(59, `no such command: '${ctx.name}'`);
}

function enableSharding(ctx: CommandContext): Doc {
  requireMongos(ctx);
  if (typeof ctx.cmd.enableSharding !== 'string' || ctx.cmd.enableSharding === '') {
    throw new MongoServerError(2, 'enableSharding takes a database name');
  }
  return { ok: 1 };
}

/** `{shardCollection: "db.coll", key: {field: 1 | "hashed", ...}}` (sh.shardCollection). */
function shardCollection(ctx: CommandContext): Doc {
  requireMongos(ctx);
  const ns = ctx.cmd.shardCollection;
  if (typeof ns !== 'string' || !/^[^.]+\.[^.].*$/.test(ns)) {
    throw new MongoServerError(73, `Invalid namespace specified '${String(ns)}'`);
  }
  const key = ctx.cmd.key;
  if (!isPlainObject(key) || Object.keys(key).length === 0) {
    throw new MongoServerError(2, 'shardCollection needs a shard key pattern in key');
  }
  for (const [field, kind] of Object.entries(key as Doc)) {
    if (field === '' || field.startsWith('$') || !(toNumber(kind) === 1 || kind === 'hashed')) {
      throw new MongoServerError(
        2,
        `Shard key pattern fields must be 1 or "hashed"; got ${field}: ${JSON.stringify(kind)}`,
      );
    }
  }
  const fields = Object.keys(key as Doc);
  const engine = ctx.state.engine;
  const existing = engine.shardKeys.get(ns);
  if (existing !== undefined && existing.join('\0') !== fields.join('\0')) {
    throw new MongoServerError(
      23,
      `sharding already enabled for collection ${ns} with a different key (${existing.join(', ')})`,
    );
  }
  const dot = ns.indexOf('.');
  engine.ensureCollection(ns.slice(0, dot), ns.slice(dot + 1));
  engine.shardKeys.set(ns, fields);
  ctx.state.log(`shardCollection ${ns} key ${fields.join(', ')}`);
  return { collectionsharded: ns, ok: 1 };
}

export const shardingCommands: Record<string, CommandSpec> = {
  enableSharding: { handler: enableSharding, adminOnly: true },
  shardCollection: { handler: shardCollection, adminOnly: true },
};
