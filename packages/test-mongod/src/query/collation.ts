// Collations on change streams. MongoDB applies a change stream's collation to the stream's own
// stages only (the updateLookup of fullDocument uses the collection's default collation), so on a
// stream whose stages compare nothing a collation changes nothing: it is validated as MongoDB
// validates it and accepted. Where it would matter, this server (which compares strings by their
// UTF-8 bytes) refuses it rather than ignoring it.
import { isNumeric, isPlainObject, toNumber } from '../bson/types.js';
import { MongoServerError } from '../errors.js';

const FIELDS = new Set([
  'locale',
  'caseLevel',
  'caseFirst',
  'strength',
  'numericOrdering',
  'alternate',
  'maxVariable',
  'normalization',
  'backwards',
  'version',
]);

/** Validate a collation; true when it is one other than the simple collation. */
export function nonSimpleCollation(v: unknown): boolean {
  if (v === undefined) return false;
  if (!isPlainObject(v)) {
    throw new MongoServerError(
      14,
      "BSON field 'collation' is the wrong type, expected type 'object'",
    );
  }
  const spec = JSON.stringify(v);
  if (v.locale === undefined) {
    throw new MongoServerError(4, 'Missing expected field "locale"', { codeName: 'NoSuchKey' });
  }
  if (typeof v.locale !== 'string') {
    throw new MongoServerError(14, `"locale" had the wrong type. Expected string`);
  }
  if (v.locale === 'simple') {
    if (Object.keys(v).length > 1) {
      throw new MongoServerError(
        9,
        `If locale=simple, no other fields should be present in: ${spec}`,
      );
    }
    return false;
  }
  if (!Object.keys(v).every((k) => FIELDS.has(k))) {
    throw new MongoServerError(9, `Collation spec contains unknown field. Collation spec: ${spec}`);
  }
  // MongoDB's collations are ICU's, as Intl.Collator's are.
  if (Intl.Collator.supportedLocalesOf(v.locale).length === 0) {
    throw new MongoServerError(2, `Field 'locale' is invalid in: { locale: "${v.locale}" }`);
  }
  if (v.strength !== undefined) {
    const s = isNumeric(v.strength) ? toNumber(v.strength) : NaN;
    if (![1, 2, 3, 4, 5].includes(s)) {
      throw new MongoServerError(
        2,
        `Field 'strength' must be an integer 1 through 5. Got: ${String(v.strength)}`,
      );
    }
  }
  return true;
}
