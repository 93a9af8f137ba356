/**
 * The routing line of a document event under a namespace's routing key (`[routing]` in
 * workers.toml, see RoutingRule): the key its events are ordered and routed by, and the key it
 * had before the event when the event changed it.
 *
 * Where the field is read:
 * - `documentKey.<field>`: the event's documentKey (every document event carries it);
 * - `fullDocument.<path>`: the document after the event (`fullDocument`: inserts and replaces
 *   always, updates with FULL_DOCUMENT set), or before it for deletes
 *   (`fullDocumentBeforeChange`, FULL_DOCUMENT_BEFORE_CHANGE set). The key before an update or a
 *   replace comes from `fullDocumentBeforeChange` too; without one the change cannot be seen.
 *   An update whose `fullDocument` is null (FULL_DOCUMENT=updateLookup and the document was
 *   deleted meanwhile, or whenAvailable without a post-image) is routed by its pre-image.
 *
 * checkRoutingSettings (routing-settings.ts) refuses at start the settings that leave a field
 * unreadable for some operation; an event that still lacks the image it needs (a pre-image the
 * server did not keep) stops the ingest with this message rather than being misrouted.
 */
import type { Document } from 'mongodb';
import { fieldValue, lineKey, type DocumentKey, type RoutingRule } from '@changeq/shared';

export interface RoutingLine {
  key: DocumentKey;
  /** The key before the event, when the event changed it (null otherwise). */
  before: DocumentKey | null;
}

const isDocument = (value: unknown): value is Document =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

export function lineOf(event: Document, ns: string, op: string, rule: RoutingRule): RoutingLine {
  if (rule.kind === 'document') {
    return { key: lineKey(ns, rule, (event.documentKey as Document)._id), before: null };
  }
  if (rule.kind === 'namespace') return { key: lineKey(ns, rule, null), before: null };
  if (rule.root === 'documentKey') {
    // A snapshot copy's documentKey holds only _id: the shard-key field is the document's own.
    const holder: unknown = op === 'snapshot' ? event.fullDocument : event.documentKey;
    return { key: lineKey(ns, rule, fieldValue(holder, rule.parts)), before: null };
  }
  const after: unknown = event.fullDocument;
  const before: unknown = event.fullDocumentBeforeChange;
  const image = op === 'delete' ? before : isDocument(after) ? after : before;
  if (!isDocument(image)) {
    const missing =
      op === 'delete' || op === 'update'
        ? 'no fullDocumentBeforeChange (the server kept no pre-image: enable changeStreamPreAndPostImages on the collection and set FULL_DOCUMENT_BEFORE_CHANGE=required to be told at once)'
        : 'no fullDocument';
    throw new Error(
      `a ${op} event in ${ns} cannot be routed by ${rule.path}: it has ${missing}; or route ${ns} by "document" in [routing]`,
    );
  }
  const key = lineKey(ns, rule, fieldValue(image, rule.parts));
  if (op === 'delete' || image === before || !isDocument(before)) return { key, before: null };
  const previous = lineKey(ns, rule, fieldValue(before, rule.parts));
  return { key, before: previous.equals(key) ? null : previous };
}
