/**
 * The `bson` package exactly as the `mongodb` driver loads it, without loading the driver: about
 * 20 MB more resident memory in a process that only encodes and decodes (the ingest's main
 * thread). Resolved from the driver's own location and required as CommonJS, it is the driver's
 * very module instance, so its classes pass `instanceof` against the values the driver decodes.
 * An ESM `import ... from 'bson'` would load a second copy (bson ships separate ESM and CommonJS
 * builds) whose classes fail that check; handlers must get the driver's own classes.
 */
import { createRequire } from 'node:module';
import type * as BSONModule from 'bson';

const require = createRequire(import.meta.url);
export const BSON = createRequire(require.resolve('mongodb'))('bson') as typeof BSONModule;

export const {
  Binary,
  BSONRegExp,
  Code,
  DBRef,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
  UUID,
  EJSON,
  serialize,
  deserialize,
} = BSON;
// The classes' instance types, under the same names as their values.
export type Binary = BSONModule.Binary;
export type BSONRegExp = BSONModule.BSONRegExp;
export type Code = BSONModule.Code;
export type DBRef = BSONModule.DBRef;
export type Decimal128 = BSONModule.Decimal128;
export type Double = BSONModule.Double;
export type Int32 = BSONModule.Int32;
export type Long = BSONModule.Long;
export type MaxKey = BSONModule.MaxKey;
export type MinKey = BSONModule.MinKey;
export type ObjectId = BSONModule.ObjectId;
export type Timestamp = BSONModule.Timestamp;
export type UUID = BSONModule.UUID;
