import type { Document } from 'mongodb';

/**
 * MongoDB's BSON comparison order of type classes, with the `$type` aliases of each class.
 * Range queries on `_id` only match values of the bound's own class ("type bracketing"), so a
 * resumable copy sorted by `_id` must also ask explicitly for the classes that sort after it.
 */
const CLASS_ORDER: readonly (readonly string[])[] = [
  ['minKey'],
  ['null'],
  ['number'],
  ['string', 'symbol'],
  ['object'],
  ['array'],
  ['binData'],
  ['objectId'],
  ['bool'],
  ['date'],
  ['timestamp'],
  ['regex'],
  ['maxKey'],
];

function classIndex(value: unknown): number {
  if (value === null || value === undefined) return 1;
  if (typeof value === 'number' || typeof value === 'bigint') return 2;
  if (typeof value === 'string') return 3;
  if (typeof value === 'boolean') return 8;
  if (value instanceof Date) return 9;
  if (value instanceof RegExp) return 11;
  if (Array.isArray(value)) return 5;
  const bsontype = (value as { _bsontype?: string })._bsontype;
  switch (bsontype) {
    case 'MinKey':
      return 0;
    case 'Int32':
    case 'Long':
    case 'Double':
    case 'Decimal128':
      return 2;
    case 'BSONSymbol':
      return 3;
    case 'Binary':
      return 6;
    case 'ObjectId':
      return 7;
    case 'Timestamp':
      return 10;
    case 'BSONRegExp':
      return 11;
    case 'MaxKey':
      return 12;
    case undefined:
      return 4;
    default:
      throw new Error(`cannot order an _id of BSON type ${bsontype}`);
  }
}

/** Filter for `_id` strictly after `id` in BSON order. */
export function idAfter(id: unknown): Document {
  const later = CLASS_ORDER.slice(classIndex(id) + 1).flat();
  return later.length === 0
    ? { _id: { $gt: id } }
    : { $or: [{ _id: { $gt: id } }, { _id: { $type: later } }] };
}

/** Filter for `_id` at or before `id` in BSON order. */
export function idAtOrBefore(id: unknown): Document {
  const earlier = CLASS_ORDER.slice(0, classIndex(id)).flat();
  return earlier.length === 0
    ? { _id: { $lte: id } }
    : { $or: [{ _id: { $lte: id } }, { _id: { $type: earlier } }] };
}
