// Collations: this server compares strings by their UTF-8 bytes only (the "simple" collation).
// Any other collation, on a command, a statement or a new collection, is refused instead of being
// accepted and then ignored (which would silently change matching, sorting and key equality).
import { isPlainObject } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { MongoServerError } from '../errors.js';

function isSimple(collation: unknown): boolean {
  return (
    isPlainObject(collation) &&
    collation.locale === 'simple' &&
    Object.keys(collation).every((k) => k === 'locale')
  );
}

function refuse(where: string): MongoServerError {
  return new MongoServerError(
    2,
    `${where}: collations other than { locale: "simple" } are not supported by changeq test-mongod`,
    { extra: { unsupported: true } },
  );
}

/** Throw for a non-simple collation on a command or on its update/delete statements. */
export function refuseCollation(name: string, cmd: Doc): void {
  if (cmd.collation !== undefined && !isSimple(cmd.collation)) throw refuse(name);
  for (const list of [cmd.updates, cmd.deletes]) {
    if (!Array.isArray(list)) continue;
    for (const st of list) {
      if (isPlainObject(st) && st.collation !== undefined && !isSimple(st.collation)) {
        throw refuse(name);
      }
    }
  }
}
