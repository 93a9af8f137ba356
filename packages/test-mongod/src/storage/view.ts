// What a command reads and writes through: the committed state directly, or a transaction's
// overlay that becomes visible (and produces change events) only at commit.
import { ObjectId } from 'bson';
import type { Long } from 'bson';
import { canonicalKey } from '../bson/canonical.js';
import type { Doc } from '../bson/types.js';
import { MongoServerError } from '../errors.js';
import type { UpdateDescription } from '../update/apply.js';
import { DocumentStore } from './catalog.js';
import type { CollectionState } from './catalog.js';
import type { Engine, PendingOp } from './engine.js';

export interface DataView {
  collection(db: string, coll: string): CollectionState | undefined;
  docs(db: string, coll: string): Doc[];
  /** The documents with these canonical `_id` keys, in natural order (as `docs` lists them). */
  byKeys(db: string, coll: string, keys: Iterable<string>): Doc[];
  get(db: string, coll: string, id: unknown): Doc | undefined;
  insert(db: string, coll: string, doc: Doc): void;
  update(
    db: string,
    coll: string,
    before: Doc,
    after: Doc,
    desc: UpdateDescription | undefined,
  ): void;
  delete(db: string, coll: string, before: Doc): void;
}

export class DirectView implements DataView {
  constructor(private readonly engine: Engine) {}

  collection(db: string, coll: string): CollectionState | undefined {
    return this.engine.catalog.get(db, coll);
  }

  docs(db: string, coll: string): Doc[] {
    const c = this.engine.catalog.get(db, coll);
    return c ? [...c.docs.values()] : [];
  }

  byKeys(db: string, coll: string, keys: Iterable<string>): Doc[] {
    const c = this.engine.catalog.get(db, coll);
    if (!c) return [];
    const found: { doc: Doc; place: number }[] = [];
    for (const k of keys) {
      const doc = c.docs.get(k);
      if (doc) found.push({ doc, place: c.docs.place(k) as number });
    }
    if (found.length > 1) found.sort((a, b) => a.place - b.place);
    return found.map((f) => f.doc);
  }

  get(db: string, coll: string, id: unknown): Doc | undefined {
    return this.engine.catalog.get(db, coll)?.docs.get(canonicalKey(id));
  }

  insert(db: string, coll: string, doc: Doc): void {
    const c = this.engine.ensureCollection(db, coll);
    this.engine.commit([this.engine.insertOp(c, doc)]);
  }

  update(
    db: string,
    coll: string,
    before: Doc,
    after: Doc,
    desc: UpdateDescription | undefined,
  ): void {
    const c = this.engine.catalog.get(db, coll) as CollectionState;
    this.engine.commit([this.engine.updateOp(c, before, after, desc)]);
  }

  delete(db: string, coll: string, before: Doc): void {
    const c = this.engine.catalog.get(db, coll) as CollectionState;
    this.engine.commit([this.engine.deleteOp(c, before)]);
  }
}

/** A document the transaction wrote; `order` is when it was first touched. */
type Slot = { doc: Doc | null; seen: Doc | undefined; order: number };

/** A multi-document transaction: reads see committed data plus the transaction's own writes. */
export class Transaction implements DataView {
  state: 'inProgress' | 'committed' | 'aborted' = 'inProgress';
  readonly id = new ObjectId();
  private readonly writes = new Map<string, Map<string, Slot>>();
  private readonly ops: { db: string; coll: string; make: (c: CollectionState) => PendingOp }[] =
    [];
  private readonly created = new Set<string>();

  constructor(
    private readonly engine: Engine,
    readonly lsid: Doc,
    readonly txnNumber: Long,
  ) {}

  private slots(db: string, coll: string): Map<string, Slot> {
    const ns = `${db}.${coll}`;
    let m = this.writes.get(ns);
    if (!m) {
      m = new Map();
      this.writes.set(ns, m);
    }
    return m;
  }

  collection(db: string, coll: string): CollectionState | undefined {
    return this.engine.catalog.get(db, coll);
  }

  docs(db: string, coll: string): Doc[] {
    const c = this.engine.catalog.get(db, coll);
    const m = this.writes.get(`${db}.${coll}`);
    const out: Doc[] = [];
    if (c) {
      for (const [k, d] of c.docs) {
        const s = m?.get(k);
        if (!s) out.push(d);
        else if (s.doc) out.push(s.doc);
      }
    }
    if (m) for (const [k, s] of m) if (s.doc && !c?.docs.has(k)) out.push(s.doc);
    return out;
  }

  byKeys(db: string, coll: string, keys: Iterable<string>): Doc[] {
    const c = this.engine.catalog.get(db, coll);
    const m = this.writes.get(`${db}.${coll}`);
    // Natural order as docs() lists it: committed documents in their place (even when this
    // transaction replaced them), then documents new to the transaction in the order written.
    const found: { doc: Doc; committed: boolean; place: number }[] = [];
    for (const k of keys) {
      const s = m?.get(k);
      const doc = s ? s.doc : c?.docs.get(k);
      if (!doc) continue;
      const place = c?.docs.place(k);
      if (place !== undefined) found.push({ doc, committed: true, place });
      else found.push({ doc, committed: false, place: (s as Slot).order });
    }
    if (found.length > 1) {
      found.sort((a, b) =>
        a.committed !== b.committed ? (a.committed ? -1 : 1) : a.place - b.place,
      );
    }
    return found.map((f) => f.doc);
  }

  get(db: string, coll: string, id: unknown): Doc | undefined {
    const k = canonicalKey(id);
    const s = this.writes.get(`${db}.${coll}`)?.get(k);
    if (s) return s.doc ?? undefined;
    return this.engine.catalog.get(db, coll)?.docs.get(k);
  }

  private touch(db: string, coll: string, id: unknown, doc: Doc | null): void {
    const k = canonicalKey(id);
    const m = this.slots(db, coll);
    const s = m.get(k);
    if (s) s.doc = doc;
    else m.set(k, { doc, seen: this.engine.catalog.get(db, coll)?.docs.get(k), order: m.size });
  }

  insert(db: string, coll: string, doc: Doc): void {
    if (!this.engine.catalog.get(db, coll) && !this.created.has(`${db}.${coll}`)) {
      this.created.add(`${db}.${coll}`);
    }
    this.touch(db, coll, doc._id, doc);
    this.ops.push({ db, coll, make: (c) => this.engine.insertOp(c, doc) });
  }

  update(
    db: string,
    coll: string,
    before: Doc,
    after: Doc,
    desc: UpdateDescription | undefined,
  ): void {
    this.touch(db, coll, after._id, after);
    this.ops.push({ db, coll, make: (c) => this.engine.updateOp(c, before, after, desc) });
  }

  delete(db: string, coll: string, before: Doc): void {
    this.touch(db, coll, before._id, null);
    this.ops.push({ db, coll, make: (c) => this.engine.deleteOp(c, before) });
  }

  /** Fails with WriteConflict when a document it touched was changed outside since. */
  checkConflicts(): void {
    for (const [ns, m] of this.writes) {
      const dot = ns.indexOf('.');
      const c = this.engine.catalog.get(ns.slice(0, dot), ns.slice(dot + 1));
      for (const [k, s] of m) {
        if ((c?.docs.get(k) ?? undefined) !== s.seen) {
          throw new MongoServerError(
            112,
            'Write conflict during plan execution and yielding is disabled.',
            {
              labels: ['TransientTransactionError'],
            },
          );
        }
      }
    }
  }

  commit(): void {
    this.checkConflicts();
    const ops: PendingOp[] = [];
    const pendingCreates = new Map<string, CollectionState>();
    for (const ns of this.created) {
      const dot = ns.indexOf('.');
      const db = ns.slice(0, dot);
      const coll = ns.slice(dot + 1);
      if (this.engine.catalog.get(db, coll)) continue;
      const op = this.engine.createOp(db, coll);
      ops.push(op);
      pendingCreates.set(ns, {
        db,
        name: coll,
        uuid: op.uuid as never,
        options: {},
        indexes: [],
        docs: new DocumentStore(),
      });
    }
    for (const o of this.ops) {
      const c = this.engine.catalog.get(o.db, o.coll) ?? pendingCreates.get(`${o.db}.${o.coll}`);
      if (!c) {
        throw new MongoServerError(
          112,
          `Collection ${o.db}.${o.coll} was dropped during the transaction`,
          {
            labels: ['TransientTransactionError'],
          },
        );
      }
      ops.push(o.make(c));
    }
    this.engine.commit(ops, { lsid: this.lsid, txnNumber: this.txnNumber });
    this.state = 'committed';
  }

  get empty(): boolean {
    return this.ops.length === 0;
  }
}
