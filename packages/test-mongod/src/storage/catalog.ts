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
  docs: Map<string, Doc>;
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
      docs: new Map(),
    };
  }
}
