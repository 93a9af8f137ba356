// Collations on commands. This server compares strings by their UTF-8 bytes (the "simple"
// collation); the one place it accepts another is a change stream whose stages compare nothing
// (see query/collation.ts).
// Anywhere else a collation is refused instead of being accepted and then ignored (which would
// silently change matching, sorting and key equality).
import { isPlainObject } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { MongoServerError } from '../errors.js';

function isChangeStreamAggregate(name: string, cmd: Doc): boolean {
  const first = Array.isArray(cmd.pipeline) ? (cmd.pipeline[0] as unknown) : undefined;
  return name === 'aggregate' && isPlainObject(first) && '$changeStream' in first;
}

function isSimple(collation: unknown): boolean {
  return (
    isPlainObject(collation) &&
    collation.locale === 'simple' &&
    Object.keys(collation).every((k) => k === 'locale')
  );
}

export function unsupportedCollation(where: string): MongoServerError {
  return new MongoServerError(
    2,
    `${where}: collations other than { locale: "simple" } are not supported by changeq test-mongod`,
    { extra: { unsupported: true } },
  );
}

/**
 * Throw for a non-simple collation on a command or on its update/delete statements (change
 * stream aggregates check theirs themselves, see parseCollation).
 */
export function refuseCollation(name: string, cmd: Doc): void {
  if (isChangeStreamAggregate(name, cmd)) return;
  if (cmd.collation !== undefined && !isSimple(cmd.collation)) throw unsupportedCollation(name);
  for (const list of [cmd.updates, cmd.deletes]) {
    if (!Array.isArray(list)) continue;
    for (const st of list) {
      if (isPlainObject(st) && st.collation !== undefined && !isSimple(st.collation)) {
        throw unsupportedCollation(name);
      }
    }
  }
}
