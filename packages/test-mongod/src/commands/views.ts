// Commands on a view's namespace. MongoDB refuses writes, index commands and change streams there
// with 166 CommandNotSupportedOnView; reads through a view (and changing or renaming one) are
// MongoDB features this server lacks, so they are refused naming it rather than answered from
// the empty collection the view is not.
import { isPlainObject } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { MongoServerError } from '../errors.js';
import { isView } from '../storage/catalog.js';
import type { Catalog } from '../storage/catalog.js';

const NOT_ON_VIEWS = new Set([
  'insert',
  'update',
  'delete',
  'findAndModify',
  'findandmodify',
  'createIndexes',
  'dropIndexes',
  'listIndexes',
]);
const READS = new Set(['find', 'aggregate', 'count', 'distinct']);
const UNSUPPORTED = new Set(['collMod']);

function isChangeStream(cmd: Doc): boolean {
  const first = Array.isArray(cmd.pipeline) ? (cmd.pipeline[0] as unknown) : undefined;
  return isPlainObject(first) && '$changeStream' in first;
}

export function refuseOnView(catalog: Catalog, name: string, db: string, cmd: Doc): void {
  let coll = typeof cmd[name] === 'string' ? (cmd[name] as string) : undefined;
  let ns = `${db}.${coll}`;
  if (name === 'renameCollection' && typeof cmd.renameCollection === 'string') {
    ns = cmd.renameCollection;
    const dot = ns.indexOf('.');
    db = ns.slice(0, dot);
    coll = ns.slice(dot + 1);
  }
  if (coll === undefined || !isView(catalog.get(db, coll))) return;
  if (NOT_ON_VIEWS.has(name) || (name === 'aggregate' && isChangeStream(cmd))) {
    throw new MongoServerError(166, `Namespace ${ns} is a view, not a collection`);
  }
  if (READS.has(name) || UNSUPPORTED.has(name) || name === 'renameCollection') {
    throw new MongoServerError(
      2,
      `${name} on a view (${ns}) is not supported by changeq test-mongod`,
      { extra: { unsupported: true } },
    );
  }
}
