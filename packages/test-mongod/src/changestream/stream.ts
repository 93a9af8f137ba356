// $changeStream: option parsing, the stream's scope (collection, database, whole deployment),
// the follow-on stages applied to events, and reading batches from the change history.
// Follows the manual's "Change Streams", "Change Events", "Resume a Change Stream" and
// "Change Streams with Document Pre- and Post-Images" pages and the driver Change Streams spec.
import type { Timestamp } from 'bson';
import { serialize } from '../wire/raw.js';
import { canonicalKey } from '../bson/canonical.js';
import { identical } from '../bson/compare.js';
import { isPlainObject, typeName } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { MongoServerError } from '../errors.js';
import { compareTs, fromTimestamp, nextTs } from '../history/clock.js';
import type { Ts } from '../history/clock.js';
import type { HistoryEntry } from '../history/entry.js';
import { historyLost } from '../history/history.js';
import { decodeToken, encodeToken, eventToken, hwmToken } from '../history/token.js';
import type { TokenPosition } from '../history/token.js';
import type { DocStage } from '../query/pipeline.js';
import type { Engine } from '../storage/engine.js';
import { buildEvent, EXPANDED_OPS, invalidateEvent } from './event.js';
import { parseFollowOnStages } from './stages.js';
import { nonSimpleCollation } from '../query/collation.js';
import { eventTooLarge, MAX_EVENT_SIZE, splitEvent, SPLIT_THRESHOLD } from './split.js';
import type { Fragment } from './split.js';
import type { EventOptions } from './event.js';

export type Scope =
  | { type: 'collection'; db: string; coll: string }
  | { type: 'database'; db: string }
  | { type: 'cluster' };

type FullDocument = 'default' | 'updateLookup' | 'whenAvailable' | 'required';
type FullDocumentBeforeChange = 'off' | 'whenAvailable' | 'required';

export interface StreamSpec {
  scope: Scope;
  fullDocument: FullDocument;
  fullDocumentBeforeChange: FullDocumentBeforeChange;
  showExpandedEvents: boolean;
  start: { seq: number; afterMain: boolean } | undefined;
  /** Where the stream starts, as the first postBatchResumeToken reports it. */
  origin: TokenPosition;
  stages: DocStage[];
  /** Stages only filter (no reshaping), so cached event bytes can be sent as they are. */
  filterOnly: boolean;
  /** The pipeline ends with $changeStreamSplitLargeEvent. */
  split: boolean;
}

const KNOWN_OPTIONS = new Set([
  'fullDocument',
  'fullDocumentBeforeChange',
  'resumeAfter',
  'startAfter',
  'startAtOperationTime',
  'allChangesForCluster',
  'showExpandedEvents',
  'showSystemEvents',
  'showMigrationEvents',
  'showRawUpdateDescription',
  'allowToRunOnConfigDB',
  'allowToRunOnSystemNS',
]);

const BOOLEAN_OPTIONS = [
  'allChangesForCluster',
  'showExpandedEvents',
  'showSystemEvents',
  'showMigrationEvents',
  'showRawUpdateDescription',
  'allowToRunOnConfigDB',
  'allowToRunOnSystemNS',
];

/**
 * Options MongoDB 7.0 has but this server does not implement: refused when true rather than
 * accepted and ignored. (showMigrationEvents needs nothing: a replica set has no migrations.)
 */
const UNSUPPORTED_WHEN_TRUE = [
  'showSystemEvents',
  'showRawUpdateDescription',
  'allowToRunOnConfigDB',
  'allowToRunOnSystemNS',
];

const INTERNAL_DBS = new Set(['admin', 'config', 'local']);

function enumOption<T extends string>(name: string, v: unknown, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (typeof v !== 'string') {
    throw new MongoServerError(
      14,
      `BSON field '$changeStream.${name}' is the wrong type '${typeof v}', expected type 'string'`,
    );
  }
  if (!(allowed as readonly string[]).includes(v)) {
    throw new MongoServerError(
      2,
      `Enumeration value '${v}' for field '$changeStream.${name}' is not a valid value.`,
    );
  }
  return v as T;
}

export function parseChangeStream(
  engine: Engine,
  db: string,
  target: string | undefined,
  spec: unknown,
  rest: unknown[],
  collation?: unknown,
): StreamSpec {
  if (!isPlainObject(spec)) {
    throw new MongoServerError(50808, '$changeStream stage expects a document as argument');
  }
  for (const k of Object.keys(spec)) {
    if (!KNOWN_OPTIONS.has(k))
      throw new MongoServerError(40415, `BSON field '$changeStream.${k}' is an unknown field.`);
  }
  for (const k of BOOLEAN_OPTIONS) {
    const v = spec[k];
    if (v !== undefined && typeof v !== 'boolean') {
      throw new MongoServerError(
        14,
        `BSON field '$changeStream.${k}' is the wrong type '${typeName(v)}', expected type 'bool'`,
      );
    }
  }
  for (const k of UNSUPPORTED_WHEN_TRUE) {
    if (spec[k] === true) {
      throw new MongoServerError(
        2,
        `$changeStream option '${k}: true' is not supported by changeq test-mongod`,
        { extra: { unsupported: true } },
      );
    }
  }
  let scope: Scope;
  const all = spec.allChangesForCluster === true;
  if (all) {
    if (db !== 'admin' || target !== undefined) {
      throw new MongoServerError(
        73,
        "A $changeStream with 'allChangesForCluster:true' may only be opened on the 'admin' database, and with no collection name",
      );
    }
    scope = { type: 'cluster' };
  } else if (target === undefined) {
    if (INTERNAL_DBS.has(db)) {
      throw new MongoServerError(
        73,
        `$changeStream may not be opened on the internal ${db} database`,
      );
    }
    scope = { type: 'database', db };
  } else {
    if (INTERNAL_DBS.has(db)) {
      throw new MongoServerError(
        73,
        `$changeStream may not be opened on the internal ${db} database`,
      );
    }
    if (target.startsWith('system.')) {
      throw new MongoServerError(
        73,
        `$changeStream may not be opened on the internal ${db}.${target} collection`,
      );
    }
    scope = { type: 'collection', db, coll: target };
  }
  const fullDocument = enumOption(
    'fullDocument',
    spec.fullDocument,
    ['default', 'updateLookup', 'whenAvailable', 'required'],
    'default',
  );
  const fullDocumentBeforeChange = enumOption(
    'fullDocumentBeforeChange',
    spec.fullDocumentBeforeChange,
    ['off', 'whenAvailable', 'required'],
    'off',
  );
  const starts = ['resumeAfter', 'startAfter', 'startAtOperationTime'].filter(
    (k) => spec[k] !== undefined,
  );
  if (starts.length > 1) {
    throw new MongoServerError(
      40674,
      'Only one type of resume option is allowed, but multiple were found.',
    );
  }
  let start: StreamSpec['start'];
  // A new stream starts just after the latest cluster time, as MongoDB's does.
  let origin: TokenPosition = {
    kind: 'hwm',
    ts: nextTs(engine.clock.now()),
    txnOpIndex: 0,
    fromInvalidate: false,
  };
  let resumeToken: TokenPosition | undefined;
  if (spec.resumeAfter !== undefined || spec.startAfter !== undefined) {
    resumeToken = decodeToken(spec.resumeAfter ?? spec.startAfter);
    if (spec.resumeAfter !== undefined && resumeToken.fromInvalidate) {
      throw new MongoServerError(
        260,
        "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification.",
      );
    }
    origin = resumeToken;
  } else if (spec.startAtOperationTime !== undefined) {
    const ts = spec.startAtOperationTime as Timestamp;
    if ((ts as { _bsontype?: string })?._bsontype !== 'Timestamp') {
      throw new MongoServerError(
        14,
        "BSON field '$changeStream.startAtOperationTime' is the wrong type, expected type 'timestamp'",
      );
    }
    origin = { kind: 'hwm', ts: fromTimestamp(ts), txnOpIndex: 0, fromInvalidate: false };
  }
  // The pipeline is parsed and validated before the stream looks for its start in the history.
  const { stages, filterOnly, split, comparesValues } = parseFollowOnStages(rest);
  if (nonSimpleCollation(collation) && comparesValues) {
    throw new MongoServerError(
      2,
      'a collation on a change stream whose stages compare values ($match, computed fields) is not supported by changeq test-mongod',
      { extra: { unsupported: true } },
    );
  }
  if (origin.fragment !== undefined && !split) {
    throw new MongoServerError(
      280,
      'To resume from a split event, the $changeStream pipeline must include a $changeStreamSplitLargeEvent stage',
    );
  }
  // Apply the age limit now, so an idle server does not accept positions it should have lost.
  engine.history.trim();
  if (resumeToken || spec.startAtOperationTime !== undefined) {
    start = engine.history.resolve(origin);
    // Resuming from a fragment reads its event again, to split it and skip what was delivered.
    if (origin.fragment !== undefined) start = { ...start, afterMain: false };
  }
  return {
    scope,
    fullDocument,
    fullDocumentBeforeChange,
    showExpandedEvents: spec.showExpandedEvents === true,
    start,
    origin,
    stages,
    filterOnly,
    split,
  };
}

function isSystem(coll: string | undefined): boolean {
  return coll !== undefined && coll.startsWith('system.');
}

const NONE = { main: false, invalidate: false };
const MAIN = { main: true, invalidate: false };

/** Which outputs an entry produces for a scope: its own event and/or an invalidate. */
function outputsFor(
  e: HistoryEntry,
  scope: Scope,
  expanded: boolean,
): { main: boolean; invalidate: boolean } {
  const none = NONE;
  // Fast path: a CRUD entry of the watched collection.
  if (scope.type === 'collection' && e.bytes && e.coll === scope.coll && e.db === scope.db)
    return MAIN;
  if (e.op === 'noop') return none;
  if (e.info?.view === true) {
    // A view's definition lives in system.views: MongoDB reports its create/drop only to
    // database and deployment streams with showExpandedEvents, and it never invalidates one.
    if (scope.type === 'collection' || !expanded) return none;
    if (scope.type === 'database' && e.db !== scope.db) return none;
    return MAIN;
  }
  const main = !EXPANDED_OPS.has(e.op) || expanded;
  switch (scope.type) {
    case 'cluster':
      if (INTERNAL_DBS.has(e.db) || isSystem(e.coll)) {
        if (e.op !== 'rename' || !e.to || INTERNAL_DBS.has(e.to.db) || isSystem(e.to.coll))
          return none;
      }
      return main ? MAIN : NONE;
    case 'database': {
      const here = e.db === scope.db && !isSystem(e.coll);
      const toHere = e.op === 'rename' && e.to?.db === scope.db && !isSystem(e.to.coll);
      if (!here && !toHere) return none;
      return { main, invalidate: e.op === 'dropDatabase' };
    }
    case 'collection': {
      if (e.op === 'dropDatabase') return { main: false, invalidate: e.db === scope.db };
      const here = e.db === scope.db && e.coll === scope.coll;
      const toHere = e.op === 'rename' && e.to?.db === scope.db && e.to.coll === scope.coll;
      if (!here && !toHere) return none;
      return { main, invalidate: e.op === 'drop' || e.op === 'rename' };
    }
  }
}

export interface Batch {
  items: Buffer[];
  postBatchResumeToken: Doc;
  invalidated: boolean;
}

const BATCH_BYTES = 16 * 1024 * 1024 - 64 * 1024;
const NOT_EXPANDED: EventOptions = { showExpandedEvents: false };

export class ChangeStreamReader {
  private seq: number;
  private afterMain: boolean;
  /** The postBatchResumeToken: the last event returned, or a high-water mark past it. */
  private pbrt: string;
  /** The latest history time this stream has scanned up to (MongoDB's latestOplogTimestamp). */
  private latestTs: Ts;
  /** Fragments of a split event not delivered yet (a batch filled up in the middle of them). */
  private pending: { fragments: Fragment[]; next: number } | undefined;
  /** Resuming from this fragment of the first event: deliver only the fragments after it. */
  private resumeFragment: number | undefined;
  closed = false;

  constructor(
    private readonly engine: Engine,
    readonly spec: StreamSpec,
  ) {
    this.seq = spec.start?.seq ?? engine.history.endSeq;
    this.afterMain = spec.start?.afterMain ?? false;
    this.pbrt = encodeToken(spec.origin);
    this.latestTs = spec.origin.ts;
    this.resumeFragment = spec.origin.fragment;
  }

  /** Read what is available now, up to `maxCount` events. Never waits. */
  read(maxCount: number): Batch {
    const history = this.engine.history;
    const items: Buffer[] = [];
    let bytes = 0;
    const { scope, showExpandedEvents } = this.spec;
    while (this.seq < history.endSeq) {
      if (this.seq < history.firstSeq) throw historyLost();
      const e = history.at(this.seq) as HistoryEntry;
      const out = outputsFor(e, scope, showExpandedEvents);
      if (out.main && !this.afterMain) {
        if (!this.pending) {
          if (items.length >= maxCount) break;
          const b = this.render(e);
          const resumeFragment = this.resumeFragment;
          this.resumeFragment = undefined;
          if (b && b.length > (this.spec.split ? SPLIT_THRESHOLD : MAX_EVENT_SIZE)) {
            if (!this.spec.split) throw eventTooLarge(b.length, buildEvent(e, NOT_EXPANDED)._id);
            this.pending = { fragments: this.split(e), next: 0 };
            if (resumeFragment !== undefined) {
              if (this.pending.fragments.length <= resumeFragment) {
                throw new MongoServerError(
                  280,
                  'Attempted to resume from a split event, but the resumed stream produced a different split. Ensure that the pipeline used to resume is the same as the original',
                );
              }
              this.pending.next = resumeFragment + 1;
            }
          } else if (resumeFragment !== undefined) {
            throw new MongoServerError(
              280,
              'Attempted to resume from a split event fragment, but the event in the resumed stream was not large enough to be split',
            );
          } else if (b) {
            if (items.length > 0 && bytes + b.length > BATCH_BYTES) break;
            items.push(b);
            bytes += b.length;
            this.returned(eventToken(e.ts, e.txnOpIndex), e.ts);
          }
        }
        const pending = this.pending;
        if (pending) {
          while (pending.next < pending.fragments.length) {
            const f = pending.fragments[pending.next] as Fragment;
            if (items.length >= maxCount) break;
            if (items.length > 0 && bytes + f.bytes.length > BATCH_BYTES) break;
            items.push(f.bytes);
            bytes += f.bytes.length;
            this.returned(f.token, e.ts);
            pending.next++;
          }
          if (pending.next < pending.fragments.length) break;
          this.pending = undefined;
        }
      }
      this.afterMain = true;
      if (out.invalidate) {
        if (items.length >= maxCount) break;
        const inv = invalidateEvent(e);
        items.push(serialize(inv));
        this.closed = true;
        return { items, postBatchResumeToken: inv._id as Doc, invalidated: true };
      }
      this.seq++;
      this.afterMain = false;
    }
    if (this.seq >= history.endSeq) {
      // Caught up. As MongoDB's: when the scan has seen history past the last event returned,
      // a high-water mark at that time (which sorts before any later event at it); otherwise the
      // token stays the last event's, so a driver that cached it after the batch holds exactly
      // the last event's _id.
      const last = history.at(history.endSeq - 1);
      if (last && compareTs(last.ts, this.latestTs) > 0) {
        this.pbrt = hwmToken(last.ts);
        this.latestTs = last.ts;
      }
    }
    return { items, postBatchResumeToken: { _data: this.pbrt }, invalidated: false };
  }

  private split(e: HistoryEntry): Fragment[] {
    const doc = this.renderDoc(e) as Doc;
    return splitEvent(doc, {
      ts: e.ts,
      kind: 'event',
      txnOpIndex: e.txnOpIndex,
      fromInvalidate: false,
    });
  }

  private returned(token: string, ts: Ts): void {
    this.pbrt = token;
    if (compareTs(ts, this.latestTs) > 0) this.latestTs = ts;
  }

  /** Serialised event after stages, or undefined when filtered out. */
  private render(e: HistoryEntry): Buffer | undefined {
    const { stages, filterOnly, fullDocument, fullDocumentBeforeChange, showExpandedEvents } =
      this.spec;
    const isCrud = e.op === 'update' || e.op === 'replace' || e.op === 'delete';
    const plain =
      !showExpandedEvents &&
      (fullDocument === 'default' || e.op !== 'update') &&
      (fullDocumentBeforeChange === 'off' || !isCrud);
    if (plain && filterOnly) {
      if (stages.length > 0) {
        const ev = buildEvent(e, { showExpandedEvents: false });
        for (const s of stages) if (!s(ev)) return undefined;
      }
      return (e.bytes ??= serialize(buildEvent(e, { showExpandedEvents: false })));
    }
    const doc = this.renderDoc(e);
    return doc && serialize(doc);
  }

  /** The event after stages, or undefined when filtered out. */
  private renderDoc(e: HistoryEntry): Doc | undefined {
    const { stages, filterOnly, fullDocument, fullDocumentBeforeChange, showExpandedEvents } =
      this.spec;
    const isCrud = e.op === 'update' || e.op === 'replace' || e.op === 'delete';
    const opts: EventOptions = { showExpandedEvents };
    if (e.op === 'update' && fullDocument !== 'default')
      opts.fullDocument = this.postImage(e, fullDocument);
    if (isCrud && fullDocumentBeforeChange !== 'off') {
      if (e.pre) opts.fullDocumentBeforeChange = e.pre;
      else if (fullDocumentBeforeChange === 'required') {
        throw new MongoServerError(
          47,
          `Change stream was configured to require a pre-image for all update, delete and replace events, but the pre-image was not found for event: ${eventToken(e.ts, e.txnOpIndex)}`,
        );
      } else opts.fullDocumentBeforeChange = null;
    }
    const ev = buildEvent(e, opts);
    let cur: Doc | undefined = ev;
    for (const s of stages) {
      cur = s(cur);
      if (!cur) return undefined;
    }
    if (!filterOnly && !identical(cur._id, ev._id)) {
      throw new MongoServerError(
        280,
        'Encountered an event whose _id field, which contains the resume token, was modified by the pipeline. Modifying the _id field of an event makes it impossible to resume the stream from that point. Only transformations that retain the unmodified _id field are allowed.',
      );
    }
    return cur;
  }

  private postImage(e: HistoryEntry, mode: FullDocument): Doc | null {
    if (mode === 'updateLookup') {
      const c = this.engine.catalog.get(e.db, e.coll as string);
      if (!c || (e.uuid && !identical(c.uuid, e.uuid))) return null;
      return c.docs.get(canonicalKey(e.id)) ?? null;
    }
    if (e.images && e.doc) return e.doc;
    if (mode === 'required') {
      throw new MongoServerError(
        47,
        `Change stream was configured to require a post-image for all update, delete and replace events, but the post-image was not found for event: ${eventToken(e.ts, e.txnOpIndex)}`,
      );
    }
    return null;
  }
}
