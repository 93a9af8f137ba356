/**
 * The ingest's way from the stream to Redis: batches read one ahead (the reader thread reads and
 * plans the next batch while this one is committed), held back while the workers' queues are
 * over the backlog limit, then committed: the jobs first, the position after them. A batch's
 * position is stored beside the next batch's jobs (see `commit`).
 */
import { tokenClusterTime, tokenData, type Logger } from '@changeq/shared';
import type { StoredPosition } from '@changeq/store';
import type {
  ChangeReader,
  Clock,
  EnqueuerPort,
  FaultPoint,
  PositionPort,
  ReadBatch,
} from './ports.js';

export interface PipelinePorts {
  reader: Pick<ChangeReader, 'next'>;
  enqueuer: Pick<EnqueuerPort, 'commit' | 'waitingCounts'>;
  store: Pick<PositionPort, 'save' | 'clearSnapshot'>;
  clock: Clock;
  faults: (point: FaultPoint) => void;
}

export interface PipelineSettings {
  batchSize: number;
  backlogLimit: number;
}

export interface PipelineEvents {
  /** Backpressure started (true) or ended (false). */
  backpressure(paused: boolean): void;
}

/** What a commit did. */
export interface Committed {
  /** The position after the batch, or the one before when the batch did not move it. */
  position: StoredPosition | null;
  /** Whether a position is being stored (`stored` tells when it is). */
  saved: boolean;
  /** Resolves once `position` is stored, rejects when storing it failed; null: nothing saved. */
  stored: Promise<void> | null;
  added: number;
  skipped: number;
}

/** How old a count of waiting jobs gets before it is read again (beside the stream). */
const COUNT_MAX_AGE_MS = 1000;
/** How often the counts are read again while the queues are over the limit. */
const BACKPRESSURE_POLL_MS = 500;

export class Pipeline {
  private readAhead: Promise<ReadBatch> | null = null;
  private backlog: { at: number; counts: Map<string, number>; max: number } | null = null;
  private addedSinceCount = 0;
  private counting: Promise<void> | null = null;
  /** The last batch's position save, under way or done (at most one runs). */
  private saving: Promise<void> | null = null;

  constructor(
    private readonly ports: PipelinePorts,
    private readonly settings: PipelineSettings,
    private readonly events: PipelineEvents,
    private readonly log: Logger,
  ) {}

  /**
   * The next batch, read ahead: while one batch is being committed to Redis, the reader thread
   * reads and plans the next one, so the two threads and the two servers work at the same time.
   * Resolves null when `signal` fires. A batch read ahead is only ever committed after the one
   * before it.
   */
  async next(signal: AbortSignal): Promise<ReadBatch | null> {
    // A batch read ahead waits here too while the queues are over the limit (one batch, bounded).
    if (await this.waitForBacklog(signal)) return null;
    const next = this.readAhead ?? this.read();
    this.readAhead = null;
    const batch = await next;
    if (!batch.invalidated && !signal.aborted && !(await this.backlogFull())) {
      const ahead = this.read();
      ahead.catch(() => undefined); // its error, if any, surfaces when it is awaited
      this.readAhead = ahead;
    }
    return batch;
  }

  /** Forgets the batch read ahead: read from a stream that is being reopened. */
  discard(): void {
    this.readAhead = null;
  }

  /**
   * Adds the batch's jobs, then stores the position after them (the last event's token, or the
   * server's postBatchResumeToken of a drained batch, so a quiet stream's position moves too).
   * `clearSnapshot`: forget a finished copy once this position is stored.
   *
   * The save is not waited for: it runs beside the next batch's jobs, which is one round trip
   * less on the way of every batch. That keeps exactly-once: a position is only stored after
   * its jobs are in their queues; jobs past the stored position are what a crash between two
   * round trips always left, and the queues' watermarks skip them on the re-read. Saves stay in
   * order (the next batch's waits for this one's), and a failed save fails the next commit, or
   * `flush`.
   */
  async commit(
    batch: ReadBatch,
    previous: StoredPosition | null,
    clearSnapshot: boolean,
  ): Promise<Committed> {
    if (batch.token === null) {
      return { position: previous, saved: false, stored: null, added: 0, skipped: 0 };
    }
    const [{ added, skipped }] = await Promise.all([
      this.ports.enqueuer.commit(batch.jobs, 'stream'),
      this.saving,
    ]);
    this.addedSinceCount += added;
    const last = batch.last;
    const samePosition = previous !== null && tokenData(previous.token) === tokenData(batch.token);
    if (samePosition && batch.count === 0) {
      return { position: previous, saved: false, stored: null, added, skipped };
    }
    const position: StoredPosition = {
      token: batch.token,
      clusterTime:
        last?.clusterTime ?? tokenClusterTime(batch.token) ?? previous?.clusterTime ?? null,
      wallTime: last?.wallTime ?? previous?.wallTime ?? null,
      savedAt: new Date(this.ports.clock.now()),
    };
    const stored = this.save(position, clearSnapshot);
    stored.catch(() => undefined); // surfaces at the next commit or flush
    this.saving = stored;
    return { position, saved: true, stored, added, skipped };
  }

  /** Waits for the position save under way; rejects with its error. */
  async flush(): Promise<void> {
    await this.saving;
  }

  /** Waits for the position save under way and forgets it, whatever its outcome. */
  async settle(): Promise<void> {
    const saving = this.saving;
    this.saving = null;
    await saving?.catch(() => undefined);
  }

  private async save(position: StoredPosition, clearSnapshot: boolean): Promise<void> {
    this.ports.faults('before-token-save');
    await this.ports.store.save(position);
    this.ports.faults('after-token-save');
    if (clearSnapshot) await this.ports.store.clearSnapshot();
  }

  private read(): Promise<ReadBatch> {
    return this.ports.reader.next(this.settings.batchSize);
  }

  /**
   * The queues over the backlog limit, if any. Counting costs a round trip per queue, so a count
   * is reused while it cannot be out of date in a way that matters: waiting jobs only grow by
   * what this ingest adds, so `max + added since` bounds every queue. Only a bound over the limit
   * waits for a count; an old count under it is read again beside the stream (another ingest
   * adding to the same queues shows within a second), not on the way of the next batch.
   */
  private async backlogFull(): Promise<Map<string, number> | null> {
    const limit = this.settings.backlogLimit;
    const cached = this.backlog;
    if (!cached || cached.max + this.addedSinceCount > limit) await this.count();
    else if (this.ports.clock.now() - cached.at > COUNT_MAX_AGE_MS) {
      this.count().catch(() => undefined); // a failed count is read again next time
    }
    const counts = this.backlog?.counts ?? new Map<string, number>();
    const full = new Map([...counts].filter(([, waiting]) => waiting > limit));
    return full.size > 0 ? full : null;
  }

  /**
   * Reads the waiting counts (one read at a time). Jobs added while the counts are read stay in
   * `addedSinceCount`, perhaps counted twice: the bound may err high, never low.
   */
  private count(): Promise<void> {
    this.counting ??= (async () => {
      const at = this.ports.clock.now();
      const addedBefore = this.addedSinceCount;
      try {
        const counts = await this.ports.enqueuer.waitingCounts();
        this.backlog = { at, counts, max: Math.max(0, ...counts.values()) };
        this.addedSinceCount -= addedBefore;
      } finally {
        this.counting = null;
      }
    })();
    return this.counting;
  }

  /** Waits while any queue holds more waiting jobs than the limit; true when `signal` fired. */
  private async waitForBacklog(signal: AbortSignal): Promise<boolean> {
    let paused = false;
    for (;;) {
      const full = await this.backlogFull();
      if (!full) break;
      if (!paused) {
        paused = true;
        this.events.backpressure(true);
        this.log.warn(
          { queues: Object.fromEntries(full), limit: this.settings.backlogLimit },
          'backlog limit reached: pausing the change stream (the oplog holds the backlog)',
        );
      }
      await this.ports.clock.sleep(BACKPRESSURE_POLL_MS, signal);
      if (signal.aborted) return true;
    }
    if (paused) {
      this.events.backpressure(false);
      this.log.info('backlog below the limit: reading again');
    }
    return false;
  }
}
