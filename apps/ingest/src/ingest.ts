import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { Timestamp, type MongoClient } from 'mongodb';
import {
  Backoff,
  Router,
  UserError,
  createMongoClient,
  describeMongoFailure,
  redactUri,
  sleep,
  tokenClusterTime,
  tokenData,
  type Logger,
} from '@changeq/shared';
import {
  PositionStore,
  checkRedisDatabase,
  createRedis,
  describeRedisFailure,
  describePosition,
  type StoredPosition,
  type Enqueuer,
} from '@changeq/store';
import {
  describeScope,
  ingestEnqueuer,
  runSnapshot,
  type IngestConfig,
  type StartOptions,
} from '@changeq/source';
import {
  LOST_POSITION_CODES,
  isMongoError,
  isRedisFull,
  isTransientMongoError,
  isTransientRedisError,
  lostPositionCode,
} from './failures.js';
import { faultPoint } from './fault-points.js';
import type { EventTally } from './reader/protocol.js';
import { StreamReader, type ReadBatch } from './reader/stream-reader.js';

export type IngestState =
  'starting' | 'snapshot' | 'streaming' | 'backpressure' | 'retrying' | 'stopping' | 'stopped';

/** What the metrics and health endpoints read. */
export interface IngestStatus {
  state: IngestState;
  streamOpen: boolean;
  position: StoredPosition | null;
  lastEvent: { clusterTime: Timestamp | null; wallTime: Date | null } | null;
  /** When a read last found no change waiting (every change before it is enqueued). */
  caughtUpAt: Date | null;
  lastError: string | null;
}

export interface IngestEvents {
  /** A batch was committed: its events by namespace and operation, and the jobs added. */
  committed: [{ tally: readonly EventTally[]; added: number; skipped: number }];
  /** Backpressure started (true) or ended (false). */
  backpressure: [boolean];
  state: [IngestState];
}

/**
 * The ingest: one change stream in, jobs on the workers' queues out, resume token in Redis.
 * Failures never move the position forward on their own: transient ones are retried from the
 * last committed position with backoff; a lost resume point stops the process (unless the
 * operator accepted the gap).
 */
export class Ingest extends EventEmitter<IngestEvents> {
  readonly status: IngestStatus = {
    state: 'starting',
    streamOpen: false,
    position: null,
    lastEvent: null,
    caughtUpAt: null,
    lastError: null,
  };

  private readonly mongo: MongoClient;
  private readonly redis: Redis;
  private readonly store: PositionStore;
  private readonly enqueuer: Enqueuer;
  private readonly router: Router;
  /** The change stream, read and planned in a worker thread. */
  private readonly reader: StreamReader;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  /** Where to start when no token is stored: after a snapshot copy, or now after an accepted gap. */
  private startOverride: StartOptions | null = null;
  private readAhead: Promise<ReadBatch> | null = null;
  private backlog: { at: number; counts: Map<string, number>; max: number } | null = null;
  private addedSinceCount = 0;
  private snapshotToClear = false;

  constructor(
    private readonly config: IngestConfig,
    private readonly log: Logger,
  ) {
    super();
    const appName = `changeq-ingest-${config.ingestId}`;
    this.mongo = createMongoClient(config.mongodbUri, {
      appName,
      serverSelectionTimeoutMS: Math.min(config.connectTimeoutMs, 30_000),
    });
    this.redis = createRedis(config.redisUrl, { role: 'ingest', ingestId: config.ingestId });
    this.redis.on('error', (error) => this.log.debug({ err: error }, 'redis connection error'));
    this.router = new Router(config.workers.names);
    this.store = new PositionStore(this.redis, config.queuePrefix, config.ingestId);
    this.enqueuer = ingestEnqueuer(config, this.redis, log, () => faultPoint('after-queue-commit'));
    this.reader = new StreamReader(config, appName);
  }

  /**
   * Pings MongoDB and Redis over the ingest's own connections (for /readyz): null when the
   * server answered within `timeoutMs`, else why not.
   */
  async probe(timeoutMs: number): Promise<{ mongodb: string | null; redis: string | null }> {
    const check = async (ping: () => Promise<unknown>): Promise<string | null> => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          ping(),
          new Promise((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`no answer within ${timeoutMs} ms`)),
              timeoutMs,
            );
          }),
        ]);
        return null;
      } catch (error) {
        return (error as Error).message;
      } finally {
        clearTimeout(timer);
      }
    };
    const [mongodb, redis] = await Promise.all([
      check(() => this.mongo.db('admin').command({ ping: 1 })),
      check(() =>
        this.redis.status === 'ready'
          ? this.redis.ping()
          : Promise.reject(new Error(`connection ${this.redis.status}`)),
      ),
    ]);
    return { mongodb, redis };
  }

  /** Connects, then runs until stop() or a fatal error (which rejects). */
  async start(): Promise<void> {
    await this.connect();
    this.loop = this.run();
    return this.loop;
  }

  async stop(): Promise<void> {
    if (this.abort.signal.aborted) return this.loop ?? undefined;
    this.setState('stopping');
    this.abort.abort();
    await this.loop?.catch(() => undefined);
  }

  /** Closes connections; call after start() settled. */
  async close(): Promise<void> {
    await this.reader.shutdown();
    await this.enqueuer.close().catch(() => undefined);
    this.redis.disconnect();
    await this.mongo.close().catch(() => undefined);
    this.setState('stopped');
  }

  get stopping(): boolean {
    return this.abort.signal.aborted;
  }

  private setState(state: IngestState): void {
    if (this.status.state === state) return;
    this.status.state = state;
    this.emit('state', state);
  }

  private async connect(): Promise<void> {
    const deadline = Date.now() + this.config.connectTimeoutMs;
    const mongoUri = redactUri(this.config.mongodbUri);
    const redisUrl = redactUri(this.config.redisUrl);
    // A server that is restarting refuses or resets connections: keep trying until the deadline.
    // A wrong password or certificate is a setting to correct: it stops the ingest at once.
    await this.retryUntil(
      deadline,
      () => this.mongo.connect(),
      (error) => describeMongoFailure(error, this.config.mongodbUri),
    );
    await this.retryUntil(
      deadline,
      async () => {
        if (this.redis.status === 'wait') await this.redis.connect();
        await this.redis.ping();
      },
      (error) => describeRedisFailure(error, this.config.redisUrl),
    );
    await checkRedisDatabase(this.redis, this.config.redisUrl);
    this.log.info(
      {
        mongodbUri: mongoUri,
        redisUrl,
        watch: describeScope(this.config.watch),
        workers: this.config.workers.names,
      },
      'connected',
    );
  }

  private async retryUntil(
    deadline: number,
    attempt: () => Promise<unknown>,
    describe: (error: unknown) => { problem: string; fix: string; permanent: boolean },
  ): Promise<void> {
    const backoff = new Backoff(100, 2000);
    for (;;) {
      try {
        await attempt();
        return;
      } catch (error) {
        const failure = describe(error);
        if (failure.permanent || Date.now() > deadline || this.stopping) {
          throw new UserError(failure.problem, failure.fix);
        }
        await sleep(backoff.next(), this.abort.signal);
      }
    }
  }

  private startOptions(position: StoredPosition | null): StartOptions {
    if (position) return { startAfter: position.token };
    if (this.startOverride) return this.startOverride;
    if (this.config.startAt.kind === 'time') {
      return {
        startAtOperationTime: new Timestamp({
          t: Math.floor(this.config.startAt.at.getTime() / 1000),
          i: 0,
        }),
      };
    }
    return {};
  }

  private async run(): Promise<void> {
    const retry = new Backoff(200, 30_000);
    let failing: string | null = null;
    let position: StoredPosition | null = null;
    let ready = false;
    let redisFailed = false;
    while (!this.stopping) {
      try {
        if (!ready) {
          if (redisFailed) {
            await this.enqueuer.reset();
            redisFailed = false;
          }
          const stored = await this.store.loadStart();
          position = stored?.kind === 'position' ? stored.position : null;
          await this.enqueuer.loadWatermarks('stream');
          if (stored?.kind === 'marker') {
            // `changeq token set --at` or `changeq resync`: the first batch stores a real token.
            this.startOverride = { startAtOperationTime: stored.marker.startAt };
            this.log.info(
              {
                startAt: describeTimestamp(stored.marker.startAt),
                reason: stored.marker.reason,
              },
              'a start time is stored: the stream starts at it (START_AT is ignored)',
            );
          } else if (position) {
            if (this.config.startAt.kind !== 'now') {
              this.log.info(
                { startAt: this.config.startAt.kind },
                'a resume token is stored: START_AT is ignored (changeq token reset forces a new start)',
              );
            }
          } else if (this.config.startAt.kind === 'snapshot') {
            this.setState('snapshot');
            const startAt = await runSnapshot({
              mongo: this.mongo,
              enqueuer: this.enqueuer,
              router: this.router,
              store: this.store,
              config: this.config,
              log: this.log,
              signal: this.abort.signal,
            });
            if (!startAt) break; // stopped during the copy
            this.startOverride = { startAtOperationTime: startAt };
            this.snapshotToClear = true;
          }
          this.status.position = position;
          ready = true;
          if (stored?.kind !== 'marker') {
            this.log.info(
              { resumeFrom: position ? describePosition(position) : this.config.startAt.kind },
              position
                ? 'resuming after the stored resume token'
                : 'no resume token stored: starting from START_AT',
            );
          }
        }
        if (!this.reader.isOpen) {
          await this.reader.open(this.startOptions(position));
        }
        const batch = await this.nextBatch();
        if (batch === null) break;
        if (!this.status.streamOpen) {
          // The server has answered: from here on no change is missed (with START_AT=now, "now"
          // is this moment, not the moment the process started).
          this.log.info({ watch: describeScope(this.config.watch) }, 'change stream open');
        }
        this.status.streamOpen = true;
        if (batch.count === 0 && !batch.invalidated) this.status.caughtUpAt = new Date();
        position = await this.commit(batch, position);
        if (batch.invalidated) {
          // The watched collection or database is gone: its drop/rename is enqueued; carry on
          // after the invalidate, which only startAfter (not resumeAfter) allows.
          this.log.warn(
            { position: position && describePosition(position) },
            'change stream invalidated (watched collection or database dropped or renamed); continuing after it',
          );
          await this.reader.close();
        }
        if (failing) {
          this.log.info({ after: failing }, 'recovered');
          failing = null;
        }
        retry.reset();
        this.status.lastError = null;
        this.setState('streaming');
      } catch (error) {
        this.readAhead = null; // read from a stream that is being reopened: discard it
        await this.reader.close().catch(() => undefined); // the error below says what failed
        this.status.streamOpen = false;
        if (this.stopping) break;
        const lost = lostPositionCode(error);
        if (lost !== null) {
          position = await this.onLostPosition(error as Error, lost, position);
          continue;
        }
        if (error instanceof UserError) throw error;
        const transient = isTransientMongoError(error) || isTransientRedisError(error);
        if (!transient) throw error;
        const fromMongo = isMongoError(error);
        const what = fromMongo
          ? 'MongoDB is unavailable'
          : isRedisFull(error)
            ? 'Redis is full (maxmemory with noeviction): no job can be added until memory is freed or raised'
            : 'Redis is unavailable';
        this.status.lastError = `${what}: ${(error as Error).message}`;
        if (failing !== what) {
          this.log.warn(
            { err: error },
            `${what}; retrying with backoff from the last stored position`,
          );
          failing = what;
        }
        this.setState('retrying');
        // Everything read since the last commit is read again; the watermarks make it a no-op.
        ready = ready && fromMongo;
        redisFailed ||= !fromMongo;
        await sleep(retry.next(), this.abort.signal);
      }
    }
  }

  /**
   * Whether any queue holds more waiting jobs than the backlog limit. Counting costs a round
   * trip per queue, so a count is reused while it cannot be out of date in a way that matters:
   * waiting jobs only grow by what this ingest adds, so `max + added since` bounds every queue.
   */
  private async backlogFull(): Promise<Map<string, number> | null> {
    const cached = this.backlog;
    const bound = cached ? cached.max + this.addedSinceCount : Infinity;
    if (!cached || bound > this.config.backlogLimit || Date.now() - cached.at > 1000) {
      const counts = await this.enqueuer.waitingCounts();
      this.backlog = { at: Date.now(), counts, max: Math.max(0, ...counts.values()) };
      this.addedSinceCount = 0;
    }
    const full = new Map(
      [...this.backlog!.counts].filter(([, waiting]) => waiting > this.config.backlogLimit),
    );
    return full.size > 0 ? full : null;
  }

  /** Stops reading while any queue holds more waiting jobs than the backlog limit. */
  private async waitForBacklog(): Promise<boolean> {
    let paused = false;
    for (;;) {
      const fullQueues = await this.backlogFull();
      const full = fullQueues ? [...fullQueues] : [];
      if (full.length === 0) break;
      if (!paused) {
        paused = true;
        this.setState('backpressure');
        this.emit('backpressure', true);
        this.log.warn(
          { queues: Object.fromEntries(full), limit: this.config.backlogLimit },
          'backlog limit reached: pausing the change stream (the oplog holds the backlog)',
        );
      }
      await sleep(500, this.abort.signal);
      if (this.stopping) return true;
    }
    if (paused) {
      this.emit('backpressure', false);
      this.log.info('backlog below the limit: reading again');
    }
    return false;
  }

  /** Reads a batch from the stream, its events turned into jobs (routing, encoding). */
  private readPlanned(): Promise<ReadBatch> {
    return this.reader.next(this.config.batchSize);
  }

  /**
   * The next batch, read ahead: while one batch is being committed to Redis, the reader thread
   * reads and plans the next one, so the two threads and the two servers work at the same time. Resolves null when
   * stopping. A read-ahead batch is only ever committed after the one before it.
   */
  private async nextBatch(): Promise<ReadBatch | null> {
    // A batch read ahead waits here too while the queues are over the limit (one batch, bounded).
    if (await this.waitForBacklog()) return null;
    const next = this.readAhead ?? this.readPlanned();
    this.readAhead = null;
    const batch = await next;
    if (!batch.invalidated && !this.stopping && !(await this.backlogFull())) {
      const ahead = this.readPlanned();
      ahead.catch(() => undefined); // its error, if any, surfaces when it is awaited
      this.readAhead = ahead;
    }
    return batch;
  }

  private async commit(
    batch: ReadBatch,
    previous: StoredPosition | null,
  ): Promise<StoredPosition | null> {
    if (batch.token === null) return previous;
    const result = await this.enqueuer.commit(batch.jobs, 'stream');
    this.addedSinceCount += result.added;
    const last = batch.last;
    const samePosition = previous !== null && tokenData(previous.token) === tokenData(batch.token);
    if (samePosition && batch.count === 0) return previous;
    const position: StoredPosition = {
      token: batch.token,
      clusterTime:
        last?.clusterTime ?? tokenClusterTime(batch.token) ?? previous?.clusterTime ?? null,
      wallTime: last?.wallTime ?? previous?.wallTime ?? null,
      savedAt: new Date(),
    };
    faultPoint('before-token-save');
    await this.store.save(position);
    faultPoint('after-token-save');
    this.status.position = position;
    if (this.snapshotToClear) {
      await this.store.clearSnapshot();
      this.snapshotToClear = false;
    }
    if (last) this.status.lastEvent = last;
    if (batch.count > 0) this.emit('committed', { tally: batch.tally, ...result });
    return position;
  }

  private async onLostPosition(
    error: Error,
    code: number,
    position: StoredPosition | null,
  ): Promise<StoredPosition | null> {
    const codeName = LOST_POSITION_CODES[code] ?? String(code);
    const override = this.startOverride;
    const since = position
      ? describePosition(position)
      : override && 'startAtOperationTime' in override
        ? `start time ${describeTimestamp(override.startAtOperationTime)}`
        : `START_AT=${this.config.startAt.kind}`;
    if (code === 10334) {
      throw new UserError(
        `a change event after ${since} is larger than 16 MB (${codeName}); the stream cannot pass it`,
        'narrow FULL_DOCUMENT/FULL_DOCUMENT_BEFORE_CHANGE (or add a MATCH with $project) so events stay under 16 MB, then restart',
      );
    }
    if (!this.config.acceptGap) {
      throw new UserError(
        `the stored resume point (${since}) is no longer in MongoDB's oplog (${codeName} ${code}: ${error.message}); changes after it cannot be read, and changeq never restarts from "now" on its own`,
        'resync with `changeq resync` (copies the watched collections, then the ingest streams on from the copy; or `changeq token reset` and START_AT=snapshot), or restart with --accept-gap to continue from now and log the skipped window; a larger oplog avoids this',
      );
    }
    this.log.error(
      { gapFrom: since, gapTo: new Date().toISOString(), code, codeName },
      'accepting a gap: the resume point is gone; continuing from now — changes in this window were NOT enqueued',
    );
    await this.store.clear();
    this.status.position = null;
    this.startOverride = {};
    return null;
  }
}

function describeTimestamp(time: Timestamp): string {
  return `${new Date(time.getHighBitsUnsigned() * 1000).toISOString()} (cluster time ${time.getHighBitsUnsigned()}.${time.getLowBitsUnsigned()})`;
}
