// Change event documents, shaped as the manual's "Change Events" pages describe them.
import { Binary } from 'bson';
import type { Doc } from '../bson/types.js';
import { toTimestamp } from '../history/clock.js';
import type { HistoryEntry } from '../history/entry.js';
import { eventToken } from '../history/token.js';
import { disambiguatedPathsOf } from '../update/disambiguate.js';

export const ID_INDEX_SPEC = { v: 2, key: { _id: 1 }, name: '_id_' };

export interface EventOptions {
  showExpandedEvents: boolean;
  /** fullDocument for update events (updateLookup / post-image); undefined leaves it out. */
  fullDocument?: Doc | null;
  /** fullDocumentBeforeChange; undefined leaves it out. */
  fullDocumentBeforeChange?: Doc | null;
}

/** Events visible only with showExpandedEvents: true. */
export const EXPANDED_OPS = new Set(['create', 'createIndexes', 'dropIndexes', 'modify']);

/**
 * `{_id}`, or on a sharded collection the shard key fields then `_id` (not repeated when the
 * shard key holds it), as the manual's change events show for sharded collections.
 */
function documentKey(e: HistoryEntry): Doc {
  if (e.key === undefined) return { _id: e.id };
  return '_id' in e.key ? e.key : { ...e.key, _id: e.id };
}

function ns(e: HistoryEntry): Doc {
  return e.coll === undefined ? { db: e.db } : { db: e.db, coll: e.coll };
}

export function invalidateEvent(e: HistoryEntry): Doc {
  return {
    _id: { _data: eventToken(e.ts, e.txnOpIndex, true) },
    operationType: 'invalidate',
    clusterTime: toTimestamp(e.ts),
    wallTime: e.wall,
  };
}

/** The event for an entry's own operation. */
export function buildEvent(e: HistoryEntry, o: EventOptions): Doc {
  const ev: Doc = {
    _id: { _data: eventToken(e.ts, e.txnOpIndex) },
    operationType: e.op,
    clusterTime: toTimestamp(e.ts),
    wallTime: e.wall,
  };
  if (e.info?.view === true) {
    // Events for a view's definition (system.views): no collectionUUID, no documentKey.
    ev.ns = ns(e);
    if (e.op === 'create') {
      const options = (e.info.options as Doc | undefined) ?? {};
      ev.operationDescription = { viewOn: options.viewOn, pipeline: options.pipeline };
    }
    return ev;
  }
  const withUuid = o.showExpandedEvents && e.uuid instanceof Binary;
  switch (e.op) {
    case 'insert':
    case 'replace':
      if (withUuid) ev.collectionUUID = e.uuid;
      ev.fullDocument = e.doc;
      ev.ns = ns(e);
      ev.documentKey = documentKey(e);
      break;
    case 'update':
      if (withUuid) ev.collectionUUID = e.uuid;
      if (o.fullDocument !== undefined) ev.fullDocument = o.fullDocument;
      ev.ns = ns(e);
      ev.documentKey = documentKey(e);
      ev.updateDescription = {
        updatedFields: e.desc?.updatedFields ?? {},
        removedFields: e.desc?.removedFields ?? [],
        truncatedArrays: e.desc?.truncatedArrays ?? [],
      };
      if (o.showExpandedEvents) {
        // MongoDB 6.1-8.1 show disambiguatedPaths only with showExpandedEvents.
        (ev.updateDescription as Doc).disambiguatedPaths =
          e.desc?.disambiguatedPaths ??
          (e.desc && e.doc ? disambiguatedPathsOf(e.doc, e.desc) : {});
      }
      break;
    case 'delete':
      if (withUuid) ev.collectionUUID = e.uuid;
      ev.ns = ns(e);
      ev.documentKey = documentKey(e);
      break;
    case 'drop':
      if (withUuid) ev.collectionUUID = e.uuid;
      ev.ns = ns(e);
      break;
    case 'rename':
      if (withUuid) ev.collectionUUID = e.uuid;
      ev.ns = ns(e);
      ev.to = e.to;
      if (o.showExpandedEvents) {
        const desc: Doc = { to: e.to };
        if (e.dropTargetUuid) desc.dropTarget = e.dropTargetUuid;
        ev.operationDescription = desc;
      }
      break;
    case 'dropDatabase':
      ev.ns = { db: e.db };
      break;
    case 'create':
      if (withUuid) ev.collectionUUID = e.uuid;
      ev.ns = ns(e);
      ev.operationDescription = {
        idIndex: ID_INDEX_SPEC,
        ...((e.info?.options as Doc | undefined) ?? {}),
      };
      break;
    case 'createIndexes':
    case 'dropIndexes':
      if (withUuid) ev.collectionUUID = e.uuid;
      ev.ns = ns(e);
      ev.operationDescription = { indexes: e.info?.indexes ?? [] };
      break;
    case 'modify':
      if (withUuid) ev.collectionUUID = e.uuid;
      ev.ns = ns(e);
      ev.operationDescription = (e.info?.options as Doc | undefined) ?? {};
      if (e.info?.before) ev.stateBeforeChange = { collectionOptions: e.info.before };
      break;
    default:
      break;
  }
  if (
    o.fullDocumentBeforeChange !== undefined &&
    (e.op === 'update' || e.op === 'replace' || e.op === 'delete')
  ) {
    ev.fullDocumentBeforeChange = o.fullDocumentBeforeChange;
  }
  if (e.lsid) {
    ev.lsid = e.lsid;
    ev.txnNumber = e.txnNumber;
  }
  return ev;
}
