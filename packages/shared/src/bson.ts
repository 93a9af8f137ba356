/**
 * The BSON classes changeq uses, taken from the `mongodb` driver rather than imported from the
 * `bson` package directly. `bson` ships separate ESM and CommonJS builds, and the driver (CommonJS)
 * loads the CommonJS one; an ESM `import ... from 'bson'` would load a second copy whose classes
 * fail `instanceof` against the driver's. Handlers must get the driver's own classes.
 */
import { BSON } from 'mongodb';

export {
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
} from 'mongodb';
export const EJSON = BSON.EJSON;
export const serialize = BSON.serialize;
export const deserialize = BSON.deserialize;
