import {
  MongoDriverError,
  type ChangeStream,
  type ChangeStreamDocument,
  type ChangeStreamOptions,
  type Document,
  type MongoClient,
  type Timestamp,
} from 'mongodb';
import type { ResumeToken } from '@changeq/shared';
import type { IngestConfig } from './config.js';
import { scopeMatch, singleDatabase } from './watch-scope.js';
import { SPLIT_STAGE, assembleFragments, fragmentOf } from './split-events.js';
import { clusterTimeOf, transactionIdOf } from './transactions.js';

export type StartOptions =
  { startAfter: ResumeToken } | { startAtOperationTime: Timestamp } | Record<string, never>;

export interface Batch {
  /**
   * Events to enqueue, in oplog order (never the invalidate event): whole events (a split
   * event's fragments joined) and whole transactions, so that the batch's token never points
   * inside either.
   */
  events: ChangeStreamDocument[];
  /**
   * The position after this batch: the last event's token, or the server's
   * postBatchResumeToken once the batch is drained (so quiet streams advance too).
   */
  token: ResumeToken | null;
  /** Set when the stream was invalidated (its collection or database dropped or renamed). */
  invalidated: boolean;
  /**
   * The clusterTime (see clusterTimeOf) of a transaction this stream enqueues in parts: one of
   * more than TRANSACTION_READ_AHEAD events past a batch's end, or one a resumed stream starts
   * inside. Its events cannot carry their index and count (see markTransactions).
   */
  partialTime: string | null;
}

/** Most events a batch reads past its `max` to end where a transaction ends. */
export const TRANSACTION_READ_AHEAD = 10_000;

/**
 * The driver closed the stream under us (after a resume it could not make): reopening it from
 * the stored position is the cure. The driver reports reading a closed stream with generic
 * error classes (NODE-3485); the stream's own state tells this case apart.
 */
export class ChangeStreamClosedError extends Error {
  constructor(options?: ErrorOptions) {
    super('the change stream was closed by the driver', options);
    this.name = 'ChangeStreamClosedError';
  }
}

function sameTime(a: ChangeStreamDocument, b: ChangeStreamDocument): boolean {
  const x = (a as { clusterTime?: Timestamp }).clusterTime;
  const y = (b as { clusterTime?: Timestamp }).clusterTime;
  return x !== undefined && y !== undefined && x.equals(y);
}

/** The one change stream that serves an ingest's whole watch scope, read batch by batch. */
export class ChangeSource {
  private stream: ChangeStream | null = null;
  /** An event read past the end of a transaction: the next batch's first. */
  private held: ChangeStreamDocument | null = null;
  /** See Batch.partialTime. */
  private partialTime: string | null = null;

  constructor(
    private readonly client: MongoClient,
    private readonly config: Pick<
      IngestConfig,
      | 'watch'
      | 'match'
      | 'pipeline'
      | 'fullDocument'
      | 'fullDocumentBeforeChange'
      | 'expandedEvents'
      | 'splitLargeEvents'
      | 'batchSize'
      | 'maxAwaitTimeMs'
    >,
    /** Most events a batch reads past its `max` to end where a transaction ends. */
    private readonly readAhead = TRANSACTION_READ_AHEAD,
  ) {}

  pipeline(): Document[] {
    const stages: Document[] = [];
    const scope = scopeMatch(this.config.watch);
    if (scope) stages.push({ $match: scope });
    if (this.config.match) stages.push({ $match: this.config.match });
    stages.push(...(this.config.pipeline ?? []));
    // Last, as MongoDB requires: it splits what the stages before it leave over 16 MB.
    if (this.config.splitLargeEvents) stages.push(SPLIT_STAGE);
    return stages;
  }

  open(start: StartOptions): void {
    this.held = null;
    // Batches end where a transaction ends, so a stored position shares its clusterTime with the
    // transaction events after it only when a transaction was being enqueued in parts.
    this.partialTime = 'startAfter' in start ? clusterTimeOf(start.startAfter) : null;
    const options: ChangeStreamOptions = {
      batchSize: this.config.batchSize,
      maxAwaitTimeMS: this.config.maxAwaitTimeMs,
      ...start,
    };
    if (this.config.fullDocument !== 'default') options.fullDocument = this.config.fullDocument;
    if (this.config.fullDocumentBeforeChange !== 'off') {
      options.fullDocumentBeforeChange = this.config.fullDocumentBeforeChange;
    }
    if (this.config.expandedEvents) options.showExpandedEvents = true;
    const scope = this.config.watch;
    const pipeline = this.pipeline();
    if (scope.kind === 'collection') {
      this.stream = this.client.db(scope.db).collection(scope.coll).watch(pipeline, options);
    } else {
      const db = singleDatabase(scope);
      this.stream = db
        ? this.client.db(db).watch(pipeline, options)
        : this.client.watch(pipeline, options);
    }
  }

  get isOpen(): boolean {
    return this.stream !== null && !this.stream.closed;
  }

  /**
   * Returns the events the server has ready (waiting up to maxAwaitTimeMS for the first one),
   * at most `max` unless a transaction needs more, stopping after an invalidate. A split event's
   * fragments are read to its last and joined. A batch that would end on an event of a
   * transaction reads on until the transaction ends: at an event of a later clusterTime (held
   * for the next batch; all of a transaction's events carry its commit's) or when the server has
   * nothing more, which a commit's atomic visibility makes its end. That costs a transaction at
   * the stream's head one more wait of maxAwaitTimeMS.
   */
  async next(max: number): Promise<Batch> {
    const stream = this.stream;
    if (!stream) throw new Error('the change stream is not open');
    const events: ChangeStreamDocument[] = [];
    let invalidated = false;
    const read = async () => {
      if (stream.closed) throw new ChangeStreamClosedError();
      try {
        return await stream.tryNext();
      } catch (error) {
        // A server's or the network's error is itself the reason; only the driver's own
        // complaint about a stream it closed is replaced.
        if (stream.closed && error instanceof MongoDriverError) {
          throw new ChangeStreamClosedError({ cause: error });
        }
        throw error;
      }
    };
    /** The next whole event: a fragment is read on to its event's last, and joined. */
    const readEvent = async (): Promise<ChangeStreamDocument | null> => {
      const first = await read();
      const split = first && fragmentOf(first);
      if (!first || !split) return first;
      const fragments: Document[] = [first];
      while (fragments.length < split.of) {
        // Fragments follow one another; the server may send the next in a later reply.
        const fragment = await read();
        if (fragment) fragments.push(fragment);
      }
      return assembleFragments(fragments);
    };
    let change = this.held ?? (await readEvent());
    this.held = null;
    let past = 0;
    while (change) {
      if (change.operationType === 'invalidate') {
        invalidated = true;
        break;
      }
      events.push(change);
      if (events.length >= max || stream.bufferedCount() === 0) {
        if (transactionIdOf(change) === null) break;
        if (past >= this.readAhead) {
          // Too large to hold in memory at once: enqueued in parts, without index and count.
          this.partialTime = clusterTimeOf(change._id);
          break;
        }
        // Every event of a transaction has its commit's clusterTime: the transaction (and any
        // other committed at that time, as shards may) ends where the time moves on.
        const after = await readEvent();
        if (after === null) break; // nothing more: the transaction is whole
        if (!sameTime(after, change)) {
          this.held = after;
          break;
        }
        change = after;
        past++;
        continue;
      }
      change = await readEvent();
    }
    let token: ResumeToken | null;
    if (invalidated && change) token = change._id as ResumeToken;
    else if (this.held) token = (events[events.length - 1]?._id as ResumeToken | undefined) ?? null;
    else token = (stream.resumeToken as ResumeToken | undefined) ?? null;
    return { events, token, invalidated, partialTime: this.partialTime };
  }

  async close(): Promise<void> {
    const stream = this.stream;
    this.stream = null;
    this.held = null;
    if (stream && !stream.closed) await stream.close().catch(() => undefined);
  }
}
