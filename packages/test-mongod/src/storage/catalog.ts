// Databases and collections held in memory. Documents are keyed by the canonical form of their
// _id (see bson/canonical.ts) and kept in insertion order, which is our natural order.
import { UUID } from 'bson';
import type { Binary } from 'bson';
import type { Doc } from '../bson/types.js';

export interface CollectionState {
  db: string;
  name: string;
  uuid: Binary;
  /** Options as given to `create` (capped, validator, ...), without command fields. */
  options: Doc;
  /** Index specs as listIndexes returns them; `_id_` is always first. */
  indexes: Doc[];
  docs: DocumentStore;
}

/**
 * The `_id` index: documents by canonical `_id` key, iterated in natural (insertion) order.
 * It also remembers each key's place in that order, so a lookup of several `_id`s returns them
 * in natural order, exactly as a scan would, without scanning. Replacing a document keeps its
 * place; deleting and re-inserting moves it to the end, as Map iteration does.
 */
export class DocumentStore extends Map<string, Doc> {
  private readonly places = new Map<string, number>();
  private nextPlace = 0;

  constructor() {
    // No initial entries: Map's constructor would call set() before `places` exists.
    super();
  }

  override set(key: string, doc: Doc): this {
    if (!this.places.has(key)) this.places.set(key, this.nextPlace++);
    return super.set(key, doc);
  }

  override delete(key: string): boolean {
    this.places.delete(key);
    return super.delete(key);
  }

  override clear(): void {
    this.places.clear();
    super.clear();
  }

  /** Where the key's document is in natural order (larger is later); undefined if absent. */
  place(key: string): number | undefined {
    return this.places.get(key);
  }
}

export const ID_INDEX: Doc = { v: 2, key: { _id: 1 }, name: '_id_' };

/** A view (created with `viewOn`): listed and in change events, but holds no documents. */
export function isView(c: CollectionState | undefined): boolean {
  return typeof c?.options.viewOn === 'string';
}

export function preAndPostImagesEnabled(c: CollectionState | undefined): boolean {
  const o = c?.options.changeStreamPreAndPostImages as { enabled?: unknown } | undefined;
  return o?.enabled === true;
}

export class Catalog {
  readonly dbs = new Map<string, Map<string, CollectionState>>();

  get(db: string, coll: string): CollectionState | undefined {
    return this.dbs.get(db)?.get(coll);
  }

  collections(db: string): CollectionState[] {
    return [...(this.dbs.get(db)?.values() ?? [])];
  }

  all(): CollectionState[] {
    const out: CollectionState[] = [];
    for (const m of this.dbs.values()) out.push(...m.values());
    return out;
  }

  add(state: CollectionState): void {
    let m = this.dbs.get(state.db);
    if (!m) {
      m = new Map();
      this.dbs.set(state.db, m);
    }
    m.set(state.name, state);
  }

  remove(db: string, coll: string): CollectionState | undefined {
    const m = this.dbs.get(db);
    const c = m?.get(coll);
    if (m && c) {
      m.delete(coll);
      if (m.size === 0) this.dbs.delete(db);
    }
    return c;
  }

  static newCollection(
    db: string,
    name: string,
    options: Doc = {},
    uuid?: Binary,
  ): CollectionState {
    return {
      db,
      name,
      uuid: uuid ?? new UUID(),
      options,
      indexes: [{ ...ID_INDEX }],
      docs: new DocumentStore(),
    };
  }
}
