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

export type StartOptions =
  { startAfter: ResumeToken } | { startAtOperationTime: Timestamp } | Record<string, never>;

export interface Batch {
  /** Events to enqueue, in oplog order (never the invalidate event). */
  events: ChangeStreamDocument[];
  /**
   * The position after this batch: the last event's token, or the server's
   * postBatchResumeToken once the batch is drained (so quiet streams advance too).
   */
  token: ResumeToken | null;
  /** Set when the stream was invalidated (its collection or database dropped or renamed). */
  invalidated: boolean;
}

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

/** The one change stream that serves an ingest's whole watch scope, read batch by batch. */
export class ChangeSource {
  private stream: ChangeStream | null = null;

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
      | 'batchSize'
      | 'maxAwaitTimeMs'
    >,
  ) {}

  pipeline(): Document[] {
    const stages: Document[] = [];
    const scope = scopeMatch(this.config.watch);
    if (scope) stages.push({ $match: scope });
    if (this.config.match) stages.push({ $match: this.config.match });
    stages.push(...(this.config.pipeline ?? []));
    return stages;
  }

  open(start: StartOptions): void {
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
   * at most `max`, stopping after an invalidate.
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
    let change = await read();
    while (change) {
      if (change.operationType === 'invalidate') {
        invalidated = true;
        break;
      }
      events.push(change);
      if (events.length >= max || stream.bufferedCount() === 0) break;
      change = await read();
    }
    const token =
      invalidated && change
        ? (change._id as ResumeToken)
        : ((stream.resumeToken as ResumeToken | undefined) ?? null);
    return { events, token, invalidated };
  }

  async close(): Promise<void> {
    const stream = this.stream;
    this.stream = null;
    if (stream && !stream.closed) await stream.close().catch(() => undefined);
  }
}
