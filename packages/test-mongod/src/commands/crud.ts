// CRUD and query commands: insert, update, delete, findAndModify, find, getMore, killCursors,
// count, distinct, aggregate (collection pipelines and $changeStream).
import { Int32, Long, ObjectId } from 'bson';
import { canonicalKey } from '../bson/canonical.js';
import { collectLeaves, setPath } from '../bson/path.js';
import { isNumeric, isPlainObject, toNumber, typeName } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { ChangeStreamReader, parseChangeStream } from '../changestream/stream.js';
import { badValue, failedToParse, MongoServerError } from '../errors.js';
import { idKeys } from '../query/id-lookup.js';
import { compileFilter } from '../query/match.js';
import { compilePipeline, stageName } from '../query/pipeline.js';
import { compileProjection } from '../query/projection.js';
import { compileSort, sortDocs } from '../query/sort.js';
import type { Cursor } from '../state.js';
import { applyReplacement, applyUpdate, isOperatorUpdate } from '../update/apply.js';
import { applyPipelineUpdate, compileUpdatePipeline } from '../update/pipeline-update.js';
import { RawArray, serialize } from '../wire/raw.js';
import type { CommandContext, CommandSpec } from './context.js';
import { formatValue } from './format.js';

const DEFAULT_BATCH = 101;
const MAX_BATCH_BYTES = 16 * 1024 * 1024 - 64 * 1024;

export function collectionName(ctx: CommandContext): string {
  const v = ctx.cmd[ctx.name];
  if (typeof v !== 'string') {
    throw new MongoServerError(73, `collection name has invalid type ${typeName(v)}`);
  }
  if (v === '' || v.includes('\0') || v.startsWith('.') || v.includes('$')) {
    throw new MongoServerError(73, `Invalid collection name: ${v}`);
  }
  return v;
}

function optionalDoc(ctx: CommandContext, field: string): Doc | undefined {
  const v = ctx.cmd[field];
  if (v === undefined || v === null) return undefined;
  if (!isPlainObject(v)) {
    throw new MongoServerError(
      14,
      `BSON field '${ctx.name}.${field}' is the wrong type '${typeName(v)}', expected type 'object'`,
    );
  }
  return v;
}

function optionalInt(
  ctx: CommandContext,
  field: string,
  source: Doc = ctx.cmd,
): number | undefined {
  const v = source[field];
  if (v === undefined || v === null) return undefined;
  if (!isNumeric(v)) {
    throw new MongoServerError(
      14,
      `BSON field '${field}' is the wrong type '${typeName(v)}', expected types '[long, int, decimal, double]'`,
    );
  }
  return Math.trunc(toNumber(v));
}

function duplicateKey(ctx: CommandContext, coll: string, id: unknown): MongoServerError {
  return new MongoServerError(
    11000,
    `E11000 duplicate key error collection: ${ctx.db}.${coll} index: _id_ dup key: { _id: ${formatValue(id)} }`,
    { extra: { keyPattern: { _id: 1 }, keyValue: { _id: id } } },
  );
}

/**
 * The documents `filter` can match, in natural order: fetched from the `_id` index when the
 * filter pins `_id` to a few values, otherwise the whole collection. Callers still apply the
 * filter; the index only spares the scan.
 */
function candidates(ctx: CommandContext, coll: string, filter: Doc): Doc[] {
  const keys = idKeys(filter);
  const stats = ctx.state.queryExecutor;
  if (!keys) {
    const all = ctx.view.docs(ctx.db, coll);
    stats.scannedObjects += all.length;
    return all;
  }
  const found = ctx.view.byKeys(ctx.db, coll, keys);
  stats.scanned += keys.size;
  stats.scannedObjects += found.length;
  return found;
}

function validateForStorage(doc: Doc): void {
  for (const k of Object.keys(doc)) {
    if (k.startsWith('$'))
      throw new MongoServerError(2, `Document can't have $ prefixed field names: ${k}`);
  }
  const id = doc._id;
  if (Array.isArray(id)) throw new MongoServerError(2, "can't use an array for _id");
  const t = typeName(id);
  if (t === 'regex' || t === 'undefined') throw new MongoServerError(2, `can't use a ${t} for _id`);
}

/** `_id` first, generated when missing, as the server stores documents. */
function withId(doc: Doc): Doc {
  if (Object.keys(doc)[0] === '_id' && doc._id !== undefined) return doc;
  const { _id, ...rest } = doc;
  return { _id: _id ?? new ObjectId(), ...rest };
}

interface WriteError {
  index: number;
  code: number;
  errmsg: string;
  [k: string]: unknown;
}

function writeErrorOf(index: number, err: unknown): WriteError {
  if (err instanceof MongoServerError) {
    return { index, code: err.code, ...err.extra, errmsg: err.message };
  }
  throw err;
}

function writeReply(n: number, writeErrors: WriteError[], extra: Doc = {}): Doc {
  const reply: Doc = { n, ...extra };
  if (writeErrors.length > 0) reply.writeErrors = writeErrors;
  reply.ok = 1;
  return reply;
}

function insertCommand(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  const docs = ctx.cmd.documents;
  if (!Array.isArray(docs))
    throw new MongoServerError(14, "BSON field 'insert.documents' is missing or not an array");
  const ordered = ctx.cmd.ordered !== false;
  const errors: WriteError[] = [];
  let n = 0;
  for (let i = 0; i < docs.length; i++) {
    try {
      const raw = docs[i];
      if (!isPlainObject(raw))
        throw new MongoServerError(14, 'documents to insert must be objects');
      const doc = withId(raw);
      validateForStorage(doc);
      if (ctx.view.get(ctx.db, coll, doc._id)) throw duplicateKey(ctx, coll, doc._id);
      ctx.view.insert(ctx.db, coll, doc);
      n++;
    } catch (err) {
      errors.push(writeErrorOf(i, err));
      if (ordered) break;
    }
  }
  return writeReply(n, errors);
}

/** The document an upsert starts from: equality conditions of the query. */
function upsertSeed(query: Doc): Doc {
  const doc: Doc = {};
  const visit = (q: Doc): void => {
    for (const [k, v] of Object.entries(q)) {
      if (k === '$and' && Array.isArray(v)) {
        for (const sub of v) if (isPlainObject(sub)) visit(sub);
        continue;
      }
      if (k.startsWith('$')) continue;
      if (isPlainObject(v) && Object.keys(v).some((x) => x.startsWith('$'))) {
        if ('$eq' in v) setPath(doc, k, v.$eq);
        continue;
      }
      setPath(doc, k, v);
    }
  };
  visit(query);
  return doc;
}

interface UpdateOutcome {
  matched: number;
  modified: number;
  upsertedId?: unknown;
  before?: Doc;
  after?: Doc;
}

function checkArrayFilters(spec: Doc): void {
  const af = spec.arrayFilters;
  if (Array.isArray(af) && af.length > 0) {
    throw new MongoServerError(2, 'arrayFilters are not supported by changeq test-mongod', {
      extra: { unsupported: true },
    });
  }
}

function runUpdate(
  ctx: CommandContext,
  coll: string,
  q: Doc,
  u: unknown,
  opts: { multi: boolean; upsert: boolean; sort?: unknown },
): UpdateOutcome {
  const pipe = Array.isArray(u) ? compileUpdatePipeline(u) : undefined;
  if (!pipe && !isPlainObject(u))
    throw failedToParse('Update argument must be either an object or an array');
  const isOp = !pipe && isOperatorUpdate(u as Doc);
  if (!isOp && !pipe && opts.multi)
    throw failedToParse('multi update is not supported for replacement-style update');
  const pred = compileFilter(q);
  let matches = candidates(ctx, coll, q).filter((d) => pred(d));
  const cmp = compileSort(opts.sort);
  if (cmp) matches = sortDocs(matches, cmp);
  if (!opts.multi) matches = matches.slice(0, 1);
  const out: UpdateOutcome = { matched: 0, modified: 0 };
  for (const before of matches) {
    out.matched++;
    let after: Doc;
    let desc;
    if (pipe) {
      const r = applyPipelineUpdate(pipe, before);
      if (!r.modified) {
        out.before ??= before;
        out.after ??= before;
        continue;
      }
      after = r.doc;
      desc = r.description;
      validateForStorage(after);
    } else if (isOp) {
      const r = applyUpdate(before, u as Doc, { inserting: false });
      if (!r.modified) {
        out.before ??= before;
        out.after ??= before;
        continue;
      }
      after = r.doc;
      desc = r.description;
    } else {
      after = applyReplacement(before, u as Doc);
      validateForStorage(after);
    }
    ctx.view.update(ctx.db, coll, before, after, desc);
    out.modified++;
    out.before ??= before;
    out.after ??= after;
  }
  if (out.matched === 0 && opts.upsert) {
    let doc: Doc;
    const seed = upsertSeed(q);
    if (pipe) {
      doc = pipe(seed);
      if (doc._id === undefined && seed._id !== undefined) doc = { _id: seed._id, ...doc };
    } else if (isOp) doc = applyUpdate(seed, u as Doc, { inserting: true }).doc;
    else {
      doc = applyReplacement(undefined, u as Doc);
      if (doc._id === undefined && seed._id !== undefined) doc._id = seed._id;
    }
    doc = withId(doc);
    validateForStorage(doc);
    if (ctx.view.get(ctx.db, coll, doc._id)) throw duplicateKey(ctx, coll, doc._id);
    ctx.view.insert(ctx.db, coll, doc);
    out.upsertedId = doc._id;
    out.after = doc;
  }
  return out;
}

function updateCommand(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  const updates = ctx.cmd.updates;
  if (!Array.isArray(updates))
    throw new MongoServerError(14, "BSON field 'update.updates' is missing or not an array");
  const ordered = ctx.cmd.ordered !== false;
  const errors: WriteError[] = [];
  const upserted: Doc[] = [];
  let n = 0;
  let nModified = 0;
  for (let i = 0; i < updates.length; i++) {
    try {
      const s = updates[i];
      if (!isPlainObject(s)) throw new MongoServerError(14, 'update statements must be objects');
      checkArrayFilters(s);
      const q = (s.q ?? {}) as Doc;
      if (!isPlainObject(q))
        throw new MongoServerError(14, "BSON field 'update.updates.q' is the wrong type");
      const r = runUpdate(ctx, coll, q, s.u, {
        multi: s.multi === true,
        upsert: s.upsert === true,
      });
      if (r.upsertedId !== undefined) {
        upserted.push({ index: i, _id: r.upsertedId });
        n++;
      } else {
        n += r.matched;
        nModified += r.modified;
      }
    } catch (err) {
      errors.push(writeErrorOf(i, err));
      if (ordered) break;
    }
  }
  const extra: Doc = { nModified };
  if (upserted.length > 0) extra.upserted = upserted;
  const reply = writeReply(n, errors, {});
  return {
    n: reply.n,
    ...(upserted.length > 0 ? { upserted } : {}),
    nModified,
    ...(errors.length > 0 ? { writeErrors: errors } : {}),
    ok: 1,
  };
}

function deleteCommand(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  const deletes = ctx.cmd.deletes;
  if (!Array.isArray(deletes))
    throw new MongoServerError(14, "BSON field 'delete.deletes' is missing or not an array");
  const ordered = ctx.cmd.ordered !== false;
  const errors: WriteError[] = [];
  let n = 0;
  for (let i = 0; i < deletes.length; i++) {
    try {
      const s = deletes[i];
      if (!isPlainObject(s)) throw new MongoServerError(14, 'delete statements must be objects');
      const q = (s.q ?? {}) as Doc;
      if (!isPlainObject(q))
        throw new MongoServerError(14, "BSON field 'delete.deletes.q' is the wrong type");
      const limit = s.limit === undefined ? 0 : toNumber(s.limit);
      if (limit !== 0 && limit !== 1)
        throw failedToParse(`The limit field in delete objects must be 0 or 1. Got ${limit}`);
      const pred = compileFilter(q);
      const matches = candidates(ctx, coll, q).filter((d) => pred(d));
      for (const d of limit === 1 ? matches.slice(0, 1) : matches) {
        ctx.view.delete(ctx.db, coll, d);
        n++;
      }
    } catch (err) {
      errors.push(writeErrorOf(i, err));
      if (ordered) break;
    }
  }
  return writeReply(n, errors);
}

function findAndModifyCommand(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  const cmd = ctx.cmd;
  const query = optionalDoc(ctx, 'query') ?? {};
  const project = compileProjection(optionalDoc(ctx, 'fields'));
  const shape = (d: Doc | undefined): Doc | null => (d ? (project ? project(d) : d) : null);
  checkArrayFilters(cmd);
  if (cmd.remove === true) {
    if (cmd.update !== undefined)
      throw failedToParse('Cannot specify both an update and remove=true');
    if (cmd.upsert === true) throw failedToParse('Cannot specify both upsert=true and remove=true');
    if (cmd.new === true)
      throw failedToParse(
        "Cannot specify both new=true and remove=true; 'remove' always returns the deleted document",
      );
    const pred = compileFilter(query);
    let matches = candidates(ctx, coll, query).filter((d) => pred(d));
    matches = sortDocs(matches, compileSort(cmd.sort));
    const d = matches[0];
    if (d) ctx.view.delete(ctx.db, coll, d);
    return { lastErrorObject: { n: d ? 1 : 0 }, value: shape(d), ok: 1 };
  }
  if (cmd.update === undefined)
    throw failedToParse('Either an update or remove=true must be specified');
  const r = runUpdate(ctx, coll, query, cmd.update, {
    multi: false,
    upsert: cmd.upsert === true,
    sort: cmd.sort,
  });
  const lastErrorObject: Doc = {
    n: r.matched > 0 || r.upsertedId !== undefined ? 1 : 0,
    updatedExisting: r.matched > 0,
  };
  if (r.upsertedId !== undefined) lastErrorObject.upserted = r.upsertedId;
  const value = cmd.new === true ? r.after : r.upsertedId !== undefined ? undefined : r.before;
  return { lastErrorObject, value: shape(value), ok: 1 };
}

// ---- cursors -------------------------------------------------------------------------------

function takeDocs(c: Cursor, max: number): Buffer[] {
  const st = c.state;
  if (st.kind !== 'find') return [];
  const out: Buffer[] = [];
  let bytes = 0;
  while (st.pos < st.docs.length && out.length < max) {
    const b = serialize(st.docs[st.pos] as Doc);
    if (out.length > 0 && bytes + b.length > MAX_BATCH_BYTES) break;
    out.push(b);
    bytes += b.length;
    st.pos++;
  }
  return out;
}

function firstBatchReply(
  ctx: CommandContext,
  ns: string,
  docs: Doc[],
  batchSize: number | undefined,
  single: boolean,
): Doc {
  const cursor = ctx.state.cursors.create(ns, { kind: 'find', docs, pos: 0 }, ctx.sessionKey);
  const items = takeDocs(cursor, batchSize ?? DEFAULT_BATCH);
  const st = cursor.state as { pos: number; docs: Doc[] };
  let id = cursor.id;
  if (single || st.pos >= st.docs.length) {
    ctx.state.cursors.kill(cursor.id);
    id = Long.ZERO;
  }
  return { cursor: { firstBatch: new RawArray(items), id, ns }, ok: 1 };
}

function findCommand(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  const cmd = ctx.cmd;
  for (const k of ['tailable', 'awaitData', 'returnKey', 'showRecordId', 'min', 'max']) {
    if (cmd[k] === true || (isPlainObject(cmd[k]) && k !== 'tailable')) {
      throw new MongoServerError(2, `find option '${k}' is not supported by changeq test-mongod`, {
        extra: { unsupported: true },
      });
    }
  }
  const filter = optionalDoc(ctx, 'filter') ?? {};
  const pred = compileFilter(filter);
  const project = compileProjection(optionalDoc(ctx, 'projection'));
  const sort = compileSort(cmd.sort);
  const skip = optionalInt(ctx, 'skip') ?? 0;
  let limit = optionalInt(ctx, 'limit') ?? 0;
  const batchSize = optionalInt(ctx, 'batchSize');
  if (skip < 0) throw badValue('skip value must be non-negative');
  if (batchSize !== undefined && batchSize < 0)
    throw badValue('batchSize value must be non-negative');
  let single = cmd.singleBatch === true;
  if (limit < 0) {
    limit = -limit;
    single = true;
  }
  let docs = candidates(ctx, coll, filter).filter((d) => pred(d));
  docs = sortDocs(docs, sort);
  if (isPlainObject(cmd.sort) && toNumber(cmd.sort.$natural) === -1) docs.reverse();
  if (skip > 0) docs = docs.slice(skip);
  if (limit > 0) docs = docs.slice(0, limit);
  if (project) docs = docs.map(project);
  const first = limit > 0 && (batchSize === undefined || batchSize > limit) ? limit : batchSize;
  return firstBatchReply(ctx, `${ctx.db}.${coll}`, docs, first, single);
}

function waitForEvents(ctx: CommandContext, cursor: Cursor, deadline: number): Promise<void> {
  return new Promise((resolve) => {
    const history = ctx.state.engine.history;
    const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
    const off = history.onAppend(done);
    const offClose = ctx.conn.onClose(done);
    cursor.wake = done;
    function done(): void {
      clearTimeout(timer);
      off();
      offClose();
      cursor.wake = undefined;
      resolve();
    }
  });
}

async function getMoreCommand(ctx: CommandContext): Promise<Doc> {
  const cmd = ctx.cmd;
  const idv = cmd.getMore;
  if (!isNumeric(idv) || typeName(idv) !== 'long') {
    throw new MongoServerError(
      14,
      `BSON field 'getMore.getMore' is the wrong type '${typeName(idv)}', expected type 'long'`,
    );
  }
  const id = idv as Long;
  const collName = cmd.collection;
  if (typeof collName !== 'string')
    throw new MongoServerError(
      14,
      "BSON field 'getMore.collection' is missing but a required field",
    );
  const cursor = ctx.state.cursors.get(id);
  if (!cursor) throw new MongoServerError(43, `cursor id ${id.toString()} not found`);
  const expectedNs = `${ctx.db}.${collName}`;
  if (cursor.ns !== expectedNs) {
    throw new MongoServerError(
      13,
      `Requested getMore on namespace '${expectedNs}', but cursor belongs to a different namespace ${cursor.ns}`,
    );
  }
  if (cursor.busy)
    throw new MongoServerError(11601, `cursor id ${id.toString()} is already in use`);
  const batchSize = optionalInt(ctx, 'batchSize');
  if (batchSize !== undefined && batchSize < 0) throw badValue('batchSize must be non-negative');
  const max = batchSize && batchSize > 0 ? batchSize : Number.MAX_SAFE_INTEGER;
  cursor.busy = true;
  try {
    const injected = ctx.state.failPoints.afterCursorCheckout(ctx.conn.appName, cursor.ns);
    if (injected) throw injected;
    if (cursor.state.kind === 'find') {
      const items = takeDocs(cursor, max);
      const done = cursor.state.pos >= cursor.state.docs.length;
      if (done) ctx.state.cursors.kill(cursor.id);
      return {
        cursor: { nextBatch: new RawArray(items), id: done ? Long.ZERO : cursor.id, ns: cursor.ns },
        ok: 1,
      };
    }
    const reader = cursor.state.reader;
    const maxTimeMS = optionalInt(ctx, 'maxTimeMS') ?? 1000;
    const deadline = Date.now() + maxTimeMS;
    let batch;
    try {
      batch = reader.read(max);
      while (batch.items.length === 0 && !reader.closed && Date.now() < deadline) {
        await waitForEvents(ctx, cursor, deadline);
        if (cursor.killed)
          throw new MongoServerError(237, `cursor id ${id.toString()} was killed`, {
            codeName: 'CursorKilled',
          });
        if (ctx.conn.closed) break;
        batch = reader.read(max);
      }
    } catch (err) {
      ctx.state.cursors.kill(cursor.id);
      throw err;
    }
    if (reader.closed) ctx.state.cursors.kill(cursor.id);
    return {
      cursor: {
        nextBatch: new RawArray(batch.items),
        postBatchResumeToken: batch.postBatchResumeToken,
        id: reader.closed ? Long.ZERO : cursor.id,
        ns: cursor.ns,
      },
      ok: 1,
    };
  } catch (err) {
    // A getMore that fails holding its cursor destroys it, as on a real server.
    ctx.state.cursors.kill(cursor.id);
    if (err instanceof MongoServerError) err.changeStreamCursor = cursor.state.kind !== 'find';
    throw err;
  } finally {
    cursor.busy = false;
    cursor.lastUsed = Date.now();
  }
}

function killCursorsCommand(ctx: CommandContext): Doc {
  collectionName(ctx);
  const ids = ctx.cmd.cursors;
  if (!Array.isArray(ids))
    throw new MongoServerError(
      14,
      "BSON field 'killCursors.cursors' is missing but a required field",
    );
  const killed: Long[] = [];
  const notFound: Long[] = [];
  for (const id of ids as Long[]) {
    if (ctx.state.cursors.kill(id)) killed.push(id);
    else notFound.push(id);
  }
  return {
    cursorsKilled: killed,
    cursorsNotFound: notFound,
    cursorsAlive: [],
    cursorsUnknown: [],
    ok: 1,
  };
}

function countCommand(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  const query = optionalDoc(ctx, 'query') ?? {};
  const pred = compileFilter(query);
  let n = candidates(ctx, coll, query).filter((d) => pred(d)).length;
  const skip = optionalInt(ctx, 'skip') ?? 0;
  const limit = Math.abs(optionalInt(ctx, 'limit') ?? 0);
  n = Math.max(0, n - skip);
  if (limit > 0) n = Math.min(n, limit);
  return { n: new Int32(n), ok: 1 };
}

function distinctCommand(ctx: CommandContext): Doc {
  const coll = collectionName(ctx);
  const key = ctx.cmd.key;
  if (typeof key !== 'string')
    throw new MongoServerError(14, "BSON field 'distinct.key' is missing or not a string");
  const query = optionalDoc(ctx, 'query') ?? {};
  const pred = compileFilter(query);
  const parts = key.split('.');
  const seen = new Set<string>();
  const values: unknown[] = [];
  for (const d of candidates(ctx, coll, query)) {
    if (!pred(d)) continue;
    for (const leaf of collectLeaves(d, parts)) {
      for (const v of Array.isArray(leaf) ? leaf : [leaf]) {
        if (v === undefined) continue;
        const k = canonicalKey(v);
        if (!seen.has(k)) {
          seen.add(k);
          values.push(v);
        }
      }
    }
  }
  return { values, ok: 1 };
}

function aggregateCommand(ctx: CommandContext): Doc {
  const cmd = ctx.cmd;
  const target = cmd.aggregate;
  const isDbLevel = isNumeric(target) && toNumber(target) === 1;
  if (!isDbLevel && typeof target !== 'string') {
    throw new MongoServerError(
      73,
      `Invalid database name or collection name for aggregate: ${String(target)}`,
    );
  }
  const pipeline = cmd.pipeline;
  if (!Array.isArray(pipeline))
    throw new MongoServerError(14, "'pipeline' option must be specified as an array");
  if (cmd.explain === true) {
    throw new MongoServerError(2, 'explain is not supported by changeq test-mongod', {
      extra: { unsupported: true },
    });
  }
  const cursorOpt = cmd.cursor;
  if (!isPlainObject(cursorOpt)) {
    throw failedToParse(
      "The 'cursor' option is required, except for aggregate with the explain argument",
    );
  }
  const batchSize = optionalInt(ctx, 'batchSize', cursorOpt);
  if (batchSize !== undefined && batchSize < 0) throw badValue('batchSize must be non-negative');
  const first = pipeline[0];
  if (first !== undefined && stageName(first)[0] === '$changeStream') {
    if (ctx.txn) {
      throw new MongoServerError(
        263,
        'Operation not permitted in transaction :: caused by :: $changeStream',
        { codeName: 'OperationNotSupportedInTransaction' },
      );
    }
    const coll = isDbLevel ? undefined : (target as string);
    const spec = parseChangeStream(
      ctx.state.engine,
      ctx.db,
      coll,
      (first as Doc).$changeStream,
      pipeline.slice(1),
      cmd.collation,
    );
    const reader = new ChangeStreamReader(ctx.state.engine, spec);
    const ns = coll === undefined ? `${ctx.db}.$cmd.aggregate` : `${ctx.db}.${coll}`;
    const batch = reader.read(batchSize ?? DEFAULT_BATCH);
    let id = Long.ZERO;
    if (!reader.closed) {
      id = ctx.state.cursors.create(ns, { kind: 'changeStream', reader }, ctx.sessionKey).id;
    }
    return {
      cursor: {
        firstBatch: new RawArray(batch.items),
        postBatchResumeToken: batch.postBatchResumeToken,
        id,
        ns,
      },
      ok: 1,
    };
  }
  for (const s of pipeline.slice(1)) {
    if (stageName(s)[0] === '$changeStream') {
      throw new MongoServerError(
        40602,
        '$changeStream is only valid as the first stage in a pipeline.',
      );
    }
  }
  if (isDbLevel) {
    const name = first === undefined ? '(empty)' : stageName(first)[0];
    throw new MongoServerError(
      2,
      `database-level aggregate starting with ${name} is not supported by changeq test-mongod`,
      { extra: { unsupported: true } },
    );
  }
  const run = compilePipeline(pipeline);
  // A leading $match (which the pipeline still applies) may narrow the input by `_id`.
  const lead = first === undefined ? undefined : stageName(first);
  const input =
    lead?.[0] === '$match' && isPlainObject(lead[1])
      ? candidates(ctx, target as string, lead[1])
      : ctx.view.docs(ctx.db, target as string);
  const docs = run(input);
  return firstBatchReply(ctx, `${ctx.db}.${target as string}`, docs, batchSize, false);
}

export const crudCommands: Record<string, CommandSpec> = {
  insert: { handler: insertCommand, write: true, inTxn: true },
  update: { handler: updateCommand, write: true, inTxn: true },
  delete: { handler: deleteCommand, write: true, inTxn: true },
  findAndModify: { handler: findAndModifyCommand, write: true, inTxn: true },
  findandmodify: { handler: findAndModifyCommand, write: true, inTxn: true },
  find: { handler: findCommand, inTxn: true },
  getMore: { handler: getMoreCommand, inTxn: true },
  killCursors: { handler: killCursorsCommand, inTxn: true },
  count: { handler: countCommand },
  distinct: { handler: distinctCommand, inTxn: true },
  aggregate: { handler: aggregateCommand, inTxn: true },
};
