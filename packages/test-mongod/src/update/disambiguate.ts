// updateDescription.disambiguatedPaths (MongoDB 6.1+, shown with showExpandedEvents): for every
// path in updatedFields, removedFields and truncatedArrays that a reader could not split back into
// its parts from the dotted string alone, the parts themselves. A path is ambiguous when a field
// name in it (not an array index) is numeric, other than the first, or contains a dot; array
// indices are listed as integers, field names as strings. Paths that are not ambiguous are left
// out, so the document is often empty (but present).
import { Int32 } from 'bson';
import { isIndex } from '../bson/path.js';
import { isPlainObject } from '../bson/types.js';
import type { Doc } from '../bson/types.js';

/** One part of a path: a field name, or an index into an array. */
export type PathPart = string | { index: number };

export function isAmbiguous(parts: readonly PathPart[]): boolean {
  return parts.some((p, i) => typeof p === 'string' && ((i > 0 && isIndex(p)) || p.includes('.')));
}

export function describeParts(parts: readonly PathPart[]): unknown[] {
  return parts.map((p) => (typeof p === 'string' ? p : new Int32(p.index)));
}

/**
 * The parts of a dotted path written by an update operator (whose field names never contain
 * dots), telling array indices from numeric field names by walking the post-image.
 */
export function partsInDocument(post: Doc, path: string): PathPart[] {
  const out: PathPart[] = [];
  let cur: unknown = post;
  for (const part of path.split('.')) {
    if (Array.isArray(cur) && isIndex(part)) {
      out.push({ index: Number(part) });
      cur = cur[Number(part)];
    } else {
      out.push(part);
      cur = isPlainObject(cur) ? cur[part] : undefined;
    }
  }
  return out;
}

/** disambiguatedPaths for the paths of an operator update, given its post-image. */
export function disambiguatedPathsOf(
  post: Doc,
  desc: { updatedFields: Doc; removedFields: string[]; truncatedArrays: { field: string }[] },
): Doc {
  const out: Doc = {};
  const paths = [
    ...Object.keys(desc.updatedFields),
    ...desc.removedFields,
    ...desc.truncatedArrays.map((t) => t.field),
  ];
  for (const path of paths) {
    const parts = partsInDocument(post, path);
    if (isAmbiguous(parts)) out[path] = describeParts(parts);
  }
  return out;
}
