// Human-readable rendering of BSON values in error messages, in the style the server uses
// (e.g. `dup key: { _id: "a" }`).
import { isPlainObject, toNumber, typeName } from '../bson/types.js';

export function formatValue(v: unknown): string {
  switch (typeName(v)) {
    case 'string':
      return JSON.stringify(v);
    case 'int':
    case 'double':
    case 'long':
    case 'decimal':
      return String(toNumber(v));
    case 'objectId':
      return `ObjectId('${(v as { toHexString(): string }).toHexString()}')`;
    case 'date':
      return `new Date(${(v as Date).getTime()})`;
    case 'null':
    case 'missing':
      return 'null';
    case 'bool':
      return String(v);
    case 'array':
      return `[ ${(v as unknown[]).map(formatValue).join(', ')} ]`;
    case 'object':
      if (isPlainObject(v)) {
        const entries = Object.entries(v).map(([k, x]) => `${k}: ${formatValue(x)}`);
        return entries.length === 0 ? '{}' : `{ ${entries.join(', ')} }`;
      }
      return String(v);
    default:
      return String(v);
  }
}
