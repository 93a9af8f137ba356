// The storage engine: every change to data or metadata becomes a HistoryEntry that is
// (1) applied to the in-memory catalog, (2) appended to the change history and (3) logged.
// Live writes and log replay share `applyEntry`, so a restart rebuilds exactly the same state.
import { UUID } from 'bson';
import type { Binary, Long, Timestamp } from 'bson';
import { canonicalKey } from '../bson/canonical.js';
import { buildEvent } from '../changestream/event.js';
import { serialize } from '../wire/raw.js';
import { isPlainObject } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { ClusterClock, compareTs, fromTimestamp, toTimestamp } from '../history/clock.js';
import type { Ts } from '../history/clock.js';
import type { EntryOp, HistoryEntry } from '../history/entry.js';
import { ByteArena } from '../history/byte-arena.js';
import { ChangeHistory } from '../history/history.js';
import type { Floor, HistoryLimits } from '../history/history.js';
import type { UpdateDescription } from '../update/apply.js';
import { Catalog, DocumentStore, preAndPostImagesEnabled } from './catalog.js';
import type { CollectionState } from './catalog.js';
import { encodeRecord, Persistence } from './persistence.js';
import type { SnapshotWriter } from './persistence.js';

export interface EngineOptions {
  dataDir?: string;
  history: HistoryLimits;
  log: (line: string) => void;
  /** Compact the log once it exceeds this size (and twice the last snapshot). */
  compactBytes?: number;
}

/** One operation of a write, before it has a cluster time. */
export type PendingOp = Omit<HistoryEntry, 'ts' | 'txnOpIndex' | 'wall'>;

const SNAPSHOT_FORMAT = 1;
/** How long a compaction step may hold the event loop. */
const COMPACTION_SLICE_MS = { min: 8, max: 200 };

function entryToRecord(e: HistoryEntry): Doc {
  const r: Doc = { ts: toTimestamp(e.ts), x: e.txnOpIndex, w: e.wall, op: e.op, db: e.db };
  if (e.coll !== undefined) r.coll = e.coll;
  if (e.uuid) r.uuid = e.uuid;
  if (e.id !== undefined) r.id = e.id;
  if (e.key) r.key = e.key;
  if (e.doc) r.doc = e.doc;
  if (e.pre) r.pre = e.pre;
  if (e.images) r.img = true;
  if (e.desc) r.desc = e.desc;
  if (e.to) r.to = e.to;
  if (e.toUuid) r.toUuid = e.toUuid;
  if (e.dropTargetUuid) r.dtu = e.dropTargetUuid;
  if (e.info) r.info = e.info;
  if (e.lsid) r.lsid = e.lsid;
  if (e.txnNumber) r.txn = e.txnNumber;
  return r;
}

function recordToEntry(r: Doc): HistoryEntry {
  const e: PendingOp = { op: r.op as EntryOp, db: r.db as string };
  if (r.coll !== undefined) e.coll = r.coll as string;
  if (r.uuid) e.uuid = r.uuid as Binary;
  if ('id' in r) e.id = r.id;
  if (r.key) e.key = r.key as Doc;
  if (r.doc) e.doc = r.doc as Doc;
  if (r.pre) e.pre = r.pre as Doc;
  if (r.img) e.images = true;
  if (r.desc) {
    const d = r.desc as Doc;
    e.desc = {
      updatedFields: d.updatedFields as Doc,
      removedFields: d.removedFields as string[],
      truncatedArrays: (d.truncatedArrays as { field: string; newSize: number }[]) ?? [],
    };
    if (d.disambiguatedPaths) e.desc.disambiguatedPaths = d.disambiguatedPaths as Doc;
  }
  if (r.to) e.to = r.to as { db: string; coll: string };
  if (r.toUuid) e.toUuid = r.toUuid as Binary;
  if (r.dtu) e.dropTargetUuid = r.dtu as Binary;
  if (r.info) e.info = r.info as Doc;
  const txn = r.lsid ? { lsid: r.lsid as Doc, txnNumber: r.txn as Long } : undefined;
  return newEntry(
    e,
    fromTimestamp(r.ts as Timestamp),
    Number((r.x as { value?: number })?.value ?? r.x),
    r.w as Date,
    txn,
  );
}

/**
 * A history entry with every field present, in one order. Built with `{...op}` instead, each
 * entry ended up with a hidden class of its own (V8's object-spread slow path): about 330 bytes
 * of shape metadata per retained entry, a third of a 1,000,000-event window's heap.
 */
function newEntry(
  op: PendingOp,
  ts: Ts,
  txnOpIndex: number,
  wall: Date,
  txn: { lsid: Doc; txnNumber: Long } | undefined,
): HistoryEntry {
  return {
    ts,
    txnOpIndex,
    wall,
    op: op.op,
    db: op.db,
    coll: op.coll,
    uuid: op.uuid,
    id: op.id,
    key: op.key,
    doc: op.doc,
    pre: op.pre,
    images: op.images,
    desc: op.desc,
    to: op.to,
    toUuid: op.toUuid,
    dropTargetUuid: op.dropTargetUuid,
    info: op.info,
    lsid: txn?.lsid,
    txnNumber: txn?.txnNumber,
    bytes: undefined,
  };
}

/** Apply one entry's effect to the catalog (used live and during replay). */
export function applyEntry(catalog: Catalog, e: HistoryEntry): void {
  switch (e.op) {
    case 'insert':
    case 'update':
    case 'replace': {
      const c = catalog.get(e.db, e.coll as string);
      if (c && e.doc) c.docs.set(canonicalKey(e.id), e.doc);
      return;
    }
    case 'delete':
      catalog.get(e.db, e.coll as string)?.docs.delete(canonicalKey(e.id));
      return;
    case 'create': {
      const options = (e.info?.options as Doc | undefined) ?? {};
      const state = Catalog.newCollection(e.db, e.coll as string, { ...options }, e.uuid);
      const indexes = e.info?.indexes;
      if (Array.isArray(indexes)) state.indexes.push(...(indexes as Doc[]));
      catalog.add(state);
      return;
    }
    case 'drop':
      catalog.remove(e.db, e.coll as string);
      return;
    case 'rename': {
      const to = e.to as { db: string; coll: string };
      const c = catalog.remove(e.db, e.coll as string);
      catalog.remove(to.db, to.coll);
      if (c) {
        c.db = to.db;
        c.name = to.coll;
        if (e.toUuid) c.uuid = e.toUuid;
        catalog.add(c);
      }
      return;
    }
    case 'dropDatabase':
      catalog.dbs.delete(e.db);
      return;
    case 'createIndexes': {
      const c = catalog.get(e.db, e.coll as string);
      const specs = (e.info?.indexes as Doc[] | undefined) ?? [];
      if (c) c.indexes.push(...specs);
      return;
    }
    case 'dropIndexes': {
      const c = catalog.get(e.db, e.coll as string);
      const names = new Set((e.info?.names as string[] | undefined) ?? []);
      if (c) c.indexes = c.indexes.filter((ix) => !names.has(ix.name as string));
      return;
    }
    case 'modify': {
      const c = catalog.get(e.db, e.coll as string);
      const changes = (e.info?.options as Doc | undefined) ?? {};
      if (c) {
        const options = { ...c.options };
        for (const [k, v] of Object.entries(changes)) {
          if (v === null) delete options[k];
          else options[k] = v;
        }
        c.options = options;
      }
      return;
    }
    case 'noop':
      return;
  }
}

export class Engine {
  readonly catalog = new Catalog();
  readonly clock: ClusterClock;
  readonly history: ChangeHistory;
  private persistence: Persistence | undefined;
  private pending: Buffer[] = [];
  private appended = false;
  private readonly arena = new ByteArena();
  /** The wall time of the last commit, shared by commits within the same millisecond. */
  private wall = new Date(0);
  /** The flush `flushed()` has scheduled for the end of this event-loop turn. */
  private scheduled: Promise<void> | undefined;
  /** Commits so far (writes of any kind, no-ops included); the no-op writer watches it. */
  commits = 0;
  /**
   * Shard keys by namespace (`db.coll` → field paths in order), set by shardCollection in mongos
   * mode. In memory only, like the server's other sharding metadata: not kept across restarts.
   */
  readonly shardKeys = new Map<string, string[]>();
  private readonly compactBytes: number;
  private readonly log: (line: string) => void;

  private constructor(options: EngineOptions, initial: Ts, floor: Floor) {
    this.clock = new ClusterClock(initial);
    this.history = new ChangeHistory(options.history, floor);
    this.compactBytes = options.compactBytes ?? 64 * 1024 * 1024;
    this.log = options.log;
  }

  static open(options: EngineOptions): Engine {
    const start: Ts = { t: Math.floor(Date.now() / 1000), i: 0 };
    if (!options.dataDir) {
      // The initialisation marker: history starts here, resuming from earlier is history lost.
      return new Engine(options, start, { ts: { t: start.t, i: 1 }, txnOpIndex: -1 });
    }
    const { persistence, records } = Persistence.open(options.dataDir, options.log);
    let engine: Engine | undefined;
    let inSnapshot = false;
    let replayed = 0;
    for (const r of records) {
      switch (r.k) {
        case 'snap': {
          const floor = r.floor as Doc;
          engine = new Engine(options, fromTimestamp(r.clock as Timestamp), {
            ts: fromTimestamp(floor.ts as Timestamp),
            txnOpIndex: Number((floor.x as { value?: number })?.value ?? floor.x),
          });
          inSnapshot = true;
          break;
        }
        case 'coll': {
          const c = r.c as Doc;
          engine?.catalog.add({
            db: c.db as string,
            name: c.name as string,
            uuid: c.uuid as Binary,
            options: c.options as Doc,
            indexes: c.indexes as Doc[],
            docs: new DocumentStore(),
          });
          break;
        }
        case 'docs': {
          const state = engine?.catalog.get(r.db as string, r.coll as string);
          for (const d of r.docs as Doc[]) state?.docs.set(canonicalKey(d._id), d);
          break;
        }
        case 'hist':
          engine?.history.append(recordToEntry(r.e as Doc));
          break;
        case 'hists':
          for (const e of r.es as Doc[]) engine?.history.append(recordToEntry(e));
          break;
        case 'end':
          inSnapshot = false;
          break;
        case 'init': {
          const ts = fromTimestamp(r.ts as Timestamp);
          engine = new Engine(options, ts, { ts, txnOpIndex: -1 });
          break;
        }
        case 'entries': {
          if (!engine || inSnapshot) throw new Error('corrupt log: entries before initialisation');
          for (const raw of r.es as Doc[]) {
            const e = recordToEntry(raw);
            applyEntry(engine.catalog, e);
            engine.history.append(e);
            engine.clock.advance(e.ts);
            replayed++;
          }
          break;
        }
        default:
          throw new Error(`corrupt log: unknown record ${String(r.k)}`);
      }
    }
    if (!engine || inSnapshot) {
      if (inSnapshot) options.log('persistence: incomplete snapshot, starting empty');
      engine = new Engine(options, start, { ts: { t: start.t, i: 1 }, txnOpIndex: -1 });
      engine.persistence = persistence;
      engine.clock.advance({ t: start.t, i: 1 });
      persistence.compact((emit) => emit({ k: 'init', ts: toTimestamp({ t: start.t, i: 1 }) }));
    } else {
      engine.persistence = persistence;
      const last = engine.history.last();
      if (last) engine.clock.advance(last.ts);
      options.log(`persistence: replayed ${replayed} entries from ${options.dataDir}`);
    }
    engine.history.trim();
    return engine;
  }

  /** Commit operations: one cluster time each, or one shared time for a transaction. */
  commit(ops: PendingOp[], txn?: { lsid: Doc; txnNumber: Long }): HistoryEntry[] {
    if (ops.length === 0) return [];
    // Entries keep their Date (never mutated); one per millisecond instead of one per write.
    const now = Date.now();
    if (this.wall.getTime() !== now) this.wall = new Date(now);
    const wall = this.wall;
    const entries: HistoryEntry[] = [];
    let shared: Ts | undefined;
    ops.forEach((op, idx) => {
      const ts = txn ? (shared ??= this.clock.tick()) : this.clock.tick();
      const e = newEntry(op, ts, txn ? idx : 0, wall, txn);
      applyEntry(this.catalog, e);
      // Serialise the default-shaped event once, at write time, so readers only copy bytes.
      // (Leaving it to the first reader saves a write about 4 µs but costs a reader the same per
      // event, where it weighs far more: the read benchmark fell from ~60k to ~43k events/s.)
      if (e.op === 'insert' || e.op === 'update' || e.op === 'replace' || e.op === 'delete') {
        e.bytes = this.arena.copy(serialize(buildEvent(e, { showExpandedEvents: false })));
      }
      this.history.append(e);
      entries.push(e);
    });
    if (this.persistence) {
      if (txn) this.pending.push(encodeRecord({ k: 'entries', es: entries.map(entryToRecord) }));
      else
        for (const e of entries)
          this.pending.push(encodeRecord({ k: 'entries', es: [entryToRecord(e)] }));
    }
    this.appended = true;
    this.commits++;
    return entries;
  }

  /**
   * Write a periodic no-op: a history entry with its own cluster time that produces no change
   * event for any stream (like the `{op: 'n', o: {msg: 'periodic noop'}}` oplog entry an idle
   * replica-set primary writes). It moves the cluster time, and with it the high-water-mark
   * postBatchResumeToken of idle change streams; it is logged like any entry, so the time it
   * reached survives a restart.
   */
  writeNoop(): HistoryEntry {
    const [e] = this.commit([{ op: 'noop', db: '', info: { msg: 'periodic noop' } }]);
    this.flush();
    return e as HistoryEntry;
  }

  /**
   * Resolves once everything committed so far is durable and visible to waiting change streams;
   * undefined when that is already so. Every reply waits for it, so no client sees a document
   * or a change event that a crash could still lose. Commands finishing in the same event-loop
   * turn share one flush: many concurrent writers cost one write(2) per turn, not one each.
   */
  flushed(): Promise<void> | undefined {
    if (!this.appended && this.pending.length === 0) return undefined;
    this.scheduled ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.scheduled = undefined;
        try {
          this.flush();
          resolve();
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    return this.scheduled;
  }

  /** Make committed writes durable and visible to waiting change streams, now. */
  flush(): void {
    if (this.persistence && this.pending.length > 0) {
      this.persistence.append(this.pending);
      this.pending = [];
    }
    if (this.appended) {
      this.appended = false;
      this.history.trim();
      if (this.persistence?.shouldCompact(this.compactBytes)) this.startCompaction();
      this.history.notify();
    }
  }

  /**
   * Start compacting the log into a snapshot. The snapshot is of this moment (documents and
   * entries are immutable, so copying the references is enough) and is written a few
   * milliseconds per event-loop turn, so writes go on meanwhile: a 1,000,000-document snapshot
   * would otherwise stop the server for tens of seconds.
   */
  private startCompaction(): void {
    const p = this.persistence;
    if (!p || p.snapshotting || Date.now() < this.compactAfter) return;
    const steps = this.snapshotRecords(p.beginSnapshot());
    const done = (): void => {
      this.finishCompaction = undefined;
    };
    let sliceEnd = performance.now();
    const run = (): void => {
      if (this.finishCompaction !== finish) return;
      // At least half the time: as long as other work ran since the last slice, within bounds.
      const now = performance.now();
      const slice = Math.min(
        COMPACTION_SLICE_MS.max,
        Math.max(COMPACTION_SLICE_MS.min, now - sliceEnd),
      );
      const deadline = now + slice;
      try {
        while (performance.now() < deadline) {
          if (steps.next().done) {
            done();
            p.commitSnapshot();
            return;
          }
        }
      } catch (err) {
        done();
        p.abortSnapshot();
        // Keep the (longer) log; try again in a minute rather than on every write.
        this.compactAfter = Date.now() + 60_000;
        this.log(`persistence: compaction failed, keeping the log as it is: ${String(err)}`);
        return;
      }
      sliceEnd = performance.now();
      setImmediate(run);
    };
    const finish = (): void => {
      done();
      while (!steps.next().done);
      p.commitSnapshot();
    };
    this.finishCompaction = finish;
    setImmediate(run);
  }

  /** No compaction before this time (after a failed one). */
  private compactAfter = 0;

  /** Runs what is left of a compaction in progress at once (used by close). */
  private finishCompaction: (() => void) | undefined;

  /** Whether a compaction is being written (serverStatus changeq.compacting). */
  get compacting(): boolean {
    return this.finishCompaction !== undefined;
  }

  /** Compact the log now (the whole snapshot in one go). */
  compact(): void {
    this.startCompaction();
    this.finishCompaction?.();
  }

  /** Snapshot records of the state at the call, written to `w` one batch per step. */
  private snapshotRecords(w: SnapshotWriter): Generator<void, void, void> {
    const header: Doc = {
      k: 'snap',
      v: SNAPSHOT_FORMAT,
      clock: toTimestamp(this.clock.now()),
      floor: { ts: toTimestamp(this.history.floor.ts), x: this.history.floor.txnOpIndex },
    };
    const collections = this.catalog.all().map((c) => ({
      meta: {
        db: c.db,
        name: c.name,
        uuid: c.uuid,
        options: c.options,
        indexes: [...c.indexes],
      },
      docs: [...c.docs.values()],
    }));
    const entries = [...this.history.retained()];
    const docCount = collections.reduce((n, c) => n + c.docs.length, 0);
    this.log(
      `persistence: compacting the log: ${docCount} documents, ${entries.length} history entries`,
    );
    return (function* () {
      w.emit(header);
      for (const { meta, docs } of collections) {
        w.emit({ k: 'coll', c: meta });
        for (let i = 0; i < docs.length; i += 1000) {
          w.emit({ k: 'docs', db: meta.db, coll: meta.name, docs: docs.slice(i, i + 1000) });
          yield;
        }
      }
      // Many entries per record: one record each made compaction twice as slow.
      for (let i = 0; i < entries.length; i += 500) {
        const es = entries.slice(i, i + 500).map(entryToRecord);
        w.emit({ k: 'hists', es });
        yield;
      }
      w.emit({ k: 'end' });
    })();
  }

  close(): void {
    this.flush();
    this.finishCompaction?.();
    this.persistence?.close();
    this.persistence = undefined;
  }

  // ---- helpers used by command handlers -------------------------------------------------

  /** Op creating a collection (also used for implicit creation by inserts). */
  createOp(db: string, coll: string, options: Doc = {}, uuid?: Binary): PendingOp {
    return { op: 'create', db, coll, uuid: uuid ?? new UUID(), info: { options } };
  }

  ensureCollection(db: string, coll: string): CollectionState {
    const existing = this.catalog.get(db, coll);
    if (existing) return existing;
    this.commit([this.createOp(db, coll)]);
    return this.catalog.get(db, coll) as CollectionState;
  }

  insertOp(c: CollectionState, doc: Doc): PendingOp {
    return this.withShardKey(c, doc, {
      op: 'insert',
      db: c.db,
      coll: c.name,
      uuid: c.uuid,
      id: doc._id,
      doc,
    });
  }

  /**
   * Adds the shard key fields of `doc` to a CRUD op of a sharded collection: what its change
   * events' documentKey holds besides `_id` (a field the document lacks is left out).
   */
  private withShardKey(c: CollectionState, doc: Doc, op: PendingOp): PendingOp {
    const fields = this.shardKeys.get(`${c.db}.${c.name}`);
    if (fields === undefined) return op;
    const key: Doc = {};
    for (const path of fields) {
      let value: unknown = doc;
      for (const part of path.split('.')) {
        value = isPlainObject(value) ? (value as Doc)[part] : undefined;
      }
      if (value !== undefined) key[path] = value;
    }
    op.key = key;
    return op;
  }

  updateOp(
    c: CollectionState,
    before: Doc,
    after: Doc,
    desc: UpdateDescription | undefined,
  ): PendingOp {
    const images = preAndPostImagesEnabled(c);
    const op: PendingOp = {
      op: desc ? 'update' : 'replace',
      db: c.db,
      coll: c.name,
      uuid: c.uuid,
      id: after._id,
      doc: after,
    };
    this.withShardKey(c, after, op);
    if (desc) op.desc = desc;
    if (images) {
      op.images = true;
      op.pre = before;
    }
    return op;
  }

  deleteOp(c: CollectionState, before: Doc): PendingOp {
    const op: PendingOp = { op: 'delete', db: c.db, coll: c.name, uuid: c.uuid, id: before._id };
    this.withShardKey(c, before, op);
    if (preAndPostImagesEnabled(c)) {
      op.images = true;
      op.pre = before;
    }
    return op;
  }

  lastWriteTs(): Ts {
    return this.history.last()?.ts ?? this.clock.now();
  }

  latestAfter(ts: Ts): boolean {
    return compareTs(this.clock.now(), ts) > 0;
  }
}

export function isDocument(v: unknown): v is Doc {
  return isPlainObject(v);
}
