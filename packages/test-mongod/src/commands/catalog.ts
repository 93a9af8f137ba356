// Catalog commands: listDatabases, listCollections, listIndexes, create, drop, dropDatabase,
// renameCollection, collMod, createIndexes, dropIndexes, dbStats.
import { BSON, Int32, Long } from 'bson';
import { serialize } from '../wire/raw.js';
import { identical } from '../bson/compare.js';
import { isNumeric, isPlainObject, toNumber, typeName } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { badValue, MongoServerError } from '../errors.js';
import { compileFilter } from '../query/match.js';
import { stageName } from '../query/pipeline.js';
import { ID_INDEX, isView } from '../storage/catalog.js';
import type { CollectionState } from '../storage/catalog.js';
import type { PendingOp } from '../storage/engine.js';
import { RawArray } from '../wire/raw.js';
import type { CommandContext, CommandSpec } from './context.js';
import { collectionName } from './crud.js';

const INTERNAL_DBS = ['admin', 'config', 'local'];

function validateDbName(db: string): void {
  if (db === '' || /[/\\. "$\0]/.test(db) || db.length > 63) {
    throw new MongoServerError(73, `Invalid database name: '${db}'`);
  }
}

function sizeOf(c: CollectionState): number {
  let n = 0;
  for (const d of c.docs.values()) n += BSON.calculateObjectSize(d);
  return n;
}

function listDatabases(ctx: CommandContext): Doc {
  const { engine } = ctx.state;
  const nameOnly = ctx.cmd.nameOnly === true;
  const filter = isPlainObject(ctx.cmd.filter) ? compileFilter(ctx.cmd.filter) : undefined;
  const names = new Set<string>([...INTERNAL_DBS, ...engine.catalog.dbs.keys()]);
  const out: Doc[] = [];
  let total = 0;
  for (const name of [...names].sort()) {
    const colls = engine.catalog.collections(name);
    const size =
      colls.reduce((s, c) => s + sizeOf(c), 0) + (INTERNAL_DBS.includes(name) ? 4096 : 0);
    const entry: Doc = nameOnly
      ? { name }
      : { name, sizeOnDisk: Long.fromNumber(size), empty: size === 0 };
    if (filter && !filter(entry)) continue;
    total += size;
    out.push(entry);
  }
  if (nameOnly) return { databases: out, ok: 1 };
  return {
    databases: out,
    totalSize: Long.fromNumber(total),
    totalSizeMb: Long.fromNumber(Math.floor(total / 1048576)),
    ok: 1,
  };
}

function listCollections(ctx: CommandContext): Doc {
  const nameOnly = ctx.cmd.nameOnly === true;
  const filter = isPlainObject(ctx.cmd.filter) ? compileFilter(ctx.cmd.filter) : undefined;
  const items: Buffer[] = [];
  for (const c of ctx.state.engine.catalog.collections(ctx.db)) {
    const type = isView(c) ? 'view' : 'collection';
    const full: Doc = isView(c)
      ? { name: c.name, type, options: c.options, info: { readOnly: true } }
      : {
          name: c.name,
          type,
          options: c.options,
          info: { readOnly: false, uuid: c.uuid },
          idIndex: ID_INDEX,
        };
    if (filter && !filter(full)) continue;
    items.push(serialize(nameOnly ? { name: c.name, type } : full));
  }
  return {
    cursor: {
      id: Long.ZERO,
      ns: `${ctx.db}.$cmd.listCollections`,
      firstBatch: new RawArray(items),
    },
    ok: 1,
  };
}

function requireCollection(ctx: CommandContext, coll: string): CollectionState {
  const c = ctx.state.engine.catalog.get(ctx.db, coll);
  if (!c) throw new MongoServerError(26, `ns does not exist: ${ctx.db}.${coll}`);
  return c;
}

function listIndexes(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  const c = requireCollection(ctx, coll);
  return {
    cursor: {
      id: Long.ZERO,
      ns: `${ctx.db}.${coll}`,
      firstBatch: new RawArray(c.indexes.map((ix) => serialize(ix))),
    },
    ok: 1,
  };
}

const CREATE_OPTIONS = new Set([
  'capped',
  'size',
  'max',
  'validator',
  'validationLevel',
  'validationAction',
  'collation',
  'storageEngine',
  'indexOptionDefaults',
  'changeStreamPreAndPostImages',
  'comment',
  'idIndex',
  'expireAfterSeconds',
]);

const COMMAND_FIELDS = new Set([
  'lsid',
  'txnNumber',
  'writeConcern',
  'readConcern',
  'comment',
  'maxTimeMS',
  'autocommit',
  'startTransaction',
  'apiVersion',
  'apiStrict',
  'apiDeprecationErrors',
]);

function validatePreAndPostImages(v: unknown): void {
  if (!isPlainObject(v) || typeof v.enabled !== 'boolean') {
    throw new MongoServerError(
      14,
      "BSON field 'changeStreamPreAndPostImages.enabled' is missing or not a boolean",
    );
  }
}

function create(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  validateDbName(ctx.db);
  if (ctx.cmd.viewOn !== undefined || ctx.cmd.pipeline !== undefined) return createView(ctx, coll);
  const options: Doc = {};
  for (const [k, v] of Object.entries(ctx.cmd)) {
    if (k === 'create' || k.startsWith('$') || COMMAND_FIELDS.has(k)) continue;
    if (k === 'timeseries' || k === 'clusteredIndex' || k === 'encryptedFields') {
      throw new MongoServerError(
        2,
        `create option '${k}' is not supported by changeq test-mongod`,
        { extra: { unsupported: true } },
      );
    }
    if (!CREATE_OPTIONS.has(k))
      throw new MongoServerError(40415, `BSON field 'create.${k}' is an unknown field.`);
    if (k === 'changeStreamPreAndPostImages') validatePreAndPostImages(v);
    if (k === 'comment' || k === 'idIndex') continue;
    options[k] = v;
  }
  if (options.capped === true && !isNumeric(options.size))
    throw badValue("the 'size' field is required when 'capped' is true");
  if (options.capped === true)
    ctx.state.log(
      `create ${ctx.db}.${coll}: capped collections are not size-limited by changeq test-mongod`,
    );
  const existing = ctx.state.engine.catalog.get(ctx.db, coll);
  if (existing) {
    if (identical(existing.options, options)) return { ok: 1 };
    throw new MongoServerError(48, `Collection ${ctx.db}.${coll} already exists.`);
  }
  ctx.state.engine.commit([ctx.state.engine.createOp(ctx.db, coll, options)]);
  return { ok: 1 };
}

/**
 * A view: stored (in the catalog, as MongoDB keeps it in system.views) and reported by
 * listCollections and by change events (create, drop; with showExpandedEvents, on database and
 * deployment streams, as MongoDB reports system.views changes), but not readable here.
 */
function createView(ctx: CommandContext, coll: string): Doc {
  const { viewOn, pipeline = [] } = ctx.cmd;
  if (typeof viewOn !== 'string') {
    if (viewOn === undefined) throw badValue("'pipeline' requires 'viewOn' to also be specified");
    throw new MongoServerError(
      14,
      `BSON field 'create.viewOn' is the wrong type '${typeName(viewOn)}', expected type 'string'`,
    );
  }
  if (!Array.isArray(pipeline)) {
    throw new MongoServerError(
      14,
      `BSON field 'create.pipeline' is the wrong type '${typeName(pipeline)}', expected type 'array'`,
    );
  }
  for (const stage of pipeline) stageName(stage);
  for (const k of Object.keys(ctx.cmd)) {
    if (['create', 'viewOn', 'pipeline', 'collation'].includes(k)) continue;
    if (k.startsWith('$') || COMMAND_FIELDS.has(k)) continue;
    throw new MongoServerError(72, `option not supported on a view: ${k}`, {
      codeName: 'InvalidOptions',
    });
  }
  const options: Doc = { viewOn, pipeline };
  const existing = ctx.state.engine.catalog.get(ctx.db, coll);
  if (existing) {
    if (identical(existing.options, options)) return { ok: 1 };
    throw new MongoServerError(48, `Collection ${ctx.db}.${coll} already exists.`);
  }
  ctx.state.engine.commit([{ op: 'create', db: ctx.db, coll, info: { options, view: true } }]);
  return { ok: 1 };
}

function drop(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  const c = ctx.state.engine.catalog.get(ctx.db, coll);
  if (!c) return { ok: 1 };
  if (isView(c)) {
    ctx.state.engine.commit([{ op: 'drop', db: ctx.db, coll, info: { view: true } }]);
    return { ns: `${ctx.db}.${coll}`, ok: 1 };
  }
  const nIndexesWas = c.indexes.length;
  ctx.state.engine.commit([{ op: 'drop', db: ctx.db, coll, uuid: c.uuid }]);
  return { nIndexesWas: new Int32(nIndexesWas), ns: `${ctx.db}.${coll}`, ok: 1 };
}

function dropDatabase(ctx: CommandContext): Doc {
  const { engine } = ctx.state;
  const colls = engine.catalog.collections(ctx.db);
  if (colls.length === 0) return { ok: 1 };
  // As on a real server: one drop per collection, then the dropDatabase entry. Views go with
  // their database's system.views, which no stream reports.
  const ops: PendingOp[] = colls
    .filter((c) => !isView(c))
    .map((c) => ({
      op: 'drop',
      db: ctx.db,
      coll: c.name,
      uuid: c.uuid,
    }));
  for (const op of ops) engine.commit([op]);
  engine.commit([{ op: 'dropDatabase', db: ctx.db }]);
  return { dropped: ctx.db, ok: 1 };
}

function splitNs(v: unknown, field: string): [string, string] {
  if (typeof v !== 'string')
    throw new MongoServerError(
      14,
      `BSON field 'renameCollection.${field}' is the wrong type '${typeName(v)}', expected type 'string'`,
    );
  const dot = v.indexOf('.');
  if (dot <= 0 || dot === v.length - 1)
    throw new MongoServerError(73, `Invalid namespace specified '${v}'`);
  return [v.slice(0, dot), v.slice(dot + 1)];
}

function renameCollection(ctx: CommandContext): Doc {
  const { engine } = ctx.state;
  const [db, coll] = splitNs(ctx.cmd.renameCollection, 'renameCollection');
  const [toDb, toColl] = splitNs(ctx.cmd.to, 'to');
  validateDbName(toDb);
  const src = engine.catalog.get(db, coll);
  if (!src) throw new MongoServerError(26, `Source collection ${db}.${coll} does not exist`);
  if (db === toDb && coll === toColl)
    throw new MongoServerError(20, "Can't rename a collection to itself", {
      codeName: 'IllegalOperation',
    });
  const target = engine.catalog.get(toDb, toColl);
  if (target && ctx.cmd.dropTarget !== true)
    throw new MongoServerError(48, 'target namespace exists');
  const op: PendingOp = { op: 'rename', db, coll, uuid: src.uuid, to: { db: toDb, coll: toColl } };
  if (target) op.dropTargetUuid = target.uuid;
  if (toDb !== db) {
    // A rename across databases copies into a new collection with its own UUID.
    op.toUuid = engine.createOp(toDb, toColl).uuid;
  }
  engine.commit([op]);
  return { ok: 1 };
}

function collMod(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  const c = requireCollection(ctx, coll);
  const changes: Doc = {};
  for (const [k, v] of Object.entries(ctx.cmd)) {
    if (k === 'collMod' || k.startsWith('$') || COMMAND_FIELDS.has(k)) continue;
    switch (k) {
      case 'changeStreamPreAndPostImages':
        validatePreAndPostImages(v);
        changes[k] = { enabled: (v as Doc).enabled };
        break;
      case 'validator':
      case 'validationLevel':
      case 'validationAction':
        changes[k] = v;
        break;
      default:
        throw new MongoServerError(
          2,
          `collMod option '${k}' is not supported by changeq test-mongod`,
          { extra: { unsupported: true } },
        );
    }
  }
  // Like MongoDB, every collMod is logged, even one that changes nothing: it is a modify event
  // (with showExpandedEvents) whose stateBeforeChange holds the options it started from.
  ctx.state.engine.commit([
    {
      op: 'modify',
      db: ctx.db,
      coll,
      uuid: c.uuid,
      info: { options: changes, before: { uuid: c.uuid, ...c.options } },
    },
  ]);
  return { ok: 1 };
}

function keyPatternOk(key: unknown): key is Doc {
  if (!isPlainObject(key) || Object.keys(key).length === 0) return false;
  return Object.values(key).every(
    (v) => (isNumeric(v) && toNumber(v) !== 0) || typeof v === 'string',
  );
}

function defaultIndexName(key: Doc): string {
  return Object.entries(key)
    .map(([k, v]) => `${k}_${isNumeric(v) ? toNumber(v) : String(v)}`)
    .join('_');
}

function createIndexes(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  const specs = ctx.cmd.indexes;
  if (!Array.isArray(specs) || specs.length === 0)
    throw new MongoServerError(2, 'Must specify at least one index to create');
  const { engine } = ctx.state;
  const existed = engine.catalog.get(ctx.db, coll) !== undefined;
  const before = engine.catalog.get(ctx.db, coll)?.indexes ?? [ID_INDEX];
  const added: Doc[] = [];
  for (const s of specs) {
    if (!isPlainObject(s)) throw new MongoServerError(14, 'index specification must be an object');
    if (!keyPatternOk(s.key))
      throw new MongoServerError(
        67,
        `Error in specification ${JSON.stringify(s)} :: caused by :: Index keys cannot be an empty field.`,
      );
    const name = typeof s.name === 'string' ? s.name : defaultIndexName(s.key);
    const spec: Doc = { v: 2, ...s, name };
    const same = [...before, ...added].find((ix) => ix.name === name);
    if (same) {
      if (!identical(same.key, s.key)) {
        throw new MongoServerError(
          86,
          `An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(same)}`,
        );
      }
      continue;
    }
    if (name === '_id_' || (Object.keys(s.key).length === 1 && '_id' in s.key && s.unique !== true))
      continue;
    if (s.unique === true) {
      ctx.state.log(
        `createIndexes ${ctx.db}.${coll}: unique index '${name}' is listed but NOT enforced by changeq test-mongod`,
      );
    }
    added.push(spec);
  }
  const ops: PendingOp[] = [];
  if (!existed) ops.push(engine.createOp(ctx.db, coll));
  for (const ix of added)
    ops.push({ op: 'createIndexes', db: ctx.db, coll, info: { indexes: [ix] } });
  for (const op of ops) {
    if (op.op === 'createIndexes') op.uuid = engine.catalog.get(ctx.db, coll)?.uuid;
    engine.commit([op]);
  }
  const reply: Doc = {
    numIndexesBefore: new Int32(before.length),
    numIndexesAfter: new Int32(before.length + added.length),
    createdCollectionAutomatically: !existed,
    ok: 1,
  };
  if (added.length === 0) reply.note = 'all indexes already exist';
  return reply;
}

function dropIndexes(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  const c = requireCollection(ctx, coll);
  const which = ctx.cmd.index;
  let victims: Doc[];
  if (which === '*') victims = c.indexes.filter((ix) => ix.name !== '_id_');
  else if (typeof which === 'string' || Array.isArray(which)) {
    const names = typeof which === 'string' ? [which] : (which as unknown[]);
    victims = names.map((n) => {
      if (n === '_id_') throw new MongoServerError(72, 'cannot drop _id index');
      const ix = c.indexes.find((x) => x.name === n);
      if (!ix) throw new MongoServerError(27, `index not found with name [${String(n)}]`);
      return ix;
    });
  } else if (isPlainObject(which)) {
    const ix = c.indexes.find((x) => identical(x.key, which));
    if (!ix) throw new MongoServerError(27, `can't find index with key: ${JSON.stringify(which)}`);
    if (ix.name === '_id_') throw new MongoServerError(72, 'cannot drop _id index');
    victims = [ix];
  } else
    throw new MongoServerError(
      14,
      "BSON field 'dropIndexes.index' is missing or of the wrong type",
    );
  const nIndexesWas = c.indexes.length;
  for (const ix of victims) {
    ctx.state.engine.commit([
      {
        op: 'dropIndexes',
        db: ctx.db,
        coll,
        uuid: c.uuid,
        info: { names: [ix.name], indexes: [ix] },
      },
    ]);
  }
  return { nIndexesWas: new Int32(nIndexesWas), ok: 1 };
}

function dbStats(ctx: CommandContext): Doc {
  const colls = ctx.state.engine.catalog.collections(ctx.db);
  let objects = 0;
  let size = 0;
  for (const c of colls) {
    objects += c.docs.size;
    size += sizeOf(c);
  }
  return {
    db: ctx.db,
    collections: new Int32(colls.length),
    views: new Int32(0),
    objects: Long.fromNumber(objects),
    avgObjSize: objects ? size / objects : 0,
    dataSize: size,
    storageSize: size,
    indexes: new Int32(colls.reduce((s, c) => s + c.indexes.length, 0)),
    ok: 1,
  };
}

export const catalogCommands: Record<string, CommandSpec> = {
  listDatabases: { handler: listDatabases, adminOnly: true },
  listCollections: { handler: listCollections, inTxn: true },
  listIndexes: { handler: listIndexes, inTxn: true },
  create: { handler: create, write: true },
  drop: { handler: drop, write: true },
  dropDatabase: { handler: dropDatabase, write: true },
  renameCollection: { handler: renameCollection, write: true, adminOnly: true },
  collMod: { handler: collMod, write: true },
  createIndexes: { handler: createIndexes, write: true },
  dropIndexes: { handler: dropIndexes, write: true },
  deleteIndexes: { handler: dropIndexes, write: true },
  dbStats: { handler: dbStats },
};
