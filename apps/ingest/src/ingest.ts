import { EventEmitter } from 'node:events';
import type { Timestamp } from 'mongodb';
import type { Tracer } from '@changeq/observability';
import { Backoff, withinTime, type Logger } from '@changeq/shared';
import { copySnapshot, describeScope, type IngestConfig } from '@changeq/source';
import {
  FencedError,
  describePosition,
  type StoredPosition,
  type StoredStart,
} from '@changeq/store';
import { reachServers } from './connect.js';
import { classifyFailure, codeName, decide } from './failure-policy.js';
import type { LeadershipPort } from './leadership.js';
import { IngestPause, type PausePort } from './pause.js';
import { Pipeline } from './pipeline.js';
import {
  systemClock,
  type ChangeReader,
  type Clock,
  type EnqueuerPort,
  type EventTally,
  type FaultPoint,
  type PositionPort,
  type ReadBatch,
  type RedisConnection,
  type RingPort,
  RedisInterruptedError,
} from './ports.js';
import { RingKeeper } from './ring-change.js';
import { StartPlanner, openOptions, type StartPlan } from './start.js';
import { IngestTracing } from './tracing.js';

export type IngestState =
  | 'starting'
  /** Another ingest of the same INGEST_ID holds the lease and streams; this one waits. */
  | 'standby'
  | 'snapshot'
  | 'streaming'
  | 'backpressure'
  | 'paused'
  | 'retrying'
  | 'stopping'
  | 'stopped';

/** What the metrics and health endpoints read. */
export interface IngestStatus {
  state: IngestState;
  streamOpen: boolean;
  position: StoredPosition | null;
  lastEvent: { clusterTime: Timestamp | null; wallTime: Date | null } | null;
  /** When a read last found no change waiting (every change before it is enqueued). */
  caughtUpAt: Date | null;
  lastError: string | null;
  /**
   * The ring's current epoch and names, and every name of any stored epoch (a removed name's
   * queue may still hold jobs); null until read.
   */
  ring: { epoch: number; names: readonly string[]; everyName: readonly string[] } | null;
  /** Standby ingests: this process's role and fence, the leader and the standbys (null: off). */
  leadership: LeadershipPort['view'] | null;
}

export interface IngestEvents {
  /** A batch was committed: its events by namespace and operation, and the jobs added. */
  committed: [{ tally: readonly EventTally[]; added: number; skipped: number }];
  /** Backpressure started (true) or ended (false). */
  backpressure: [boolean];
  state: [IngestState];
}

/** What an Ingest is made of (main.ts wires the real parts; the tests, fakes). */
export interface IngestParts {
  /** The change stream and the snapshot copy's reads, over their own MongoDB connection. */
  reader: ChangeReader;
  /** The Redis connection the store and the enqueuer use (the store's `ingest` role). */
  redis: RedisConnection;
  store: PositionPort;
  enqueuer: EnqueuerPort;
  /** The ring in Redis; without it the ingest routes by workers.toml alone (unit tests). */
  ring?: RingPort;
  clock?: Clock;
  /** The operator's pause flag (`changeq pause --ingest`); without it the ingest never pauses. */
  pause?: PausePort;
  /** With OTEL_* set: spans per batch, and the trace context in every job. */
  tracer?: Tracer;
  /** The fault tests' crash points. */
  faults?: (point: FaultPoint) => void;
  /** Checks made once Redis first answers (main.ts: the database of REDIS_URL exists). */
  checkRedis?: () => Promise<void>;
  /**
   * Standby ingests: the lease this process streams under, and how its writes are fenced with
   * a term's number (null: the term ended). Without it the ingest streams at once, unfenced.
   */
  leadership?: { lease: LeadershipPort; fence: (fence: number | null) => Promise<void> } | false;
}

/** The settings an Ingest reads (all of IngestConfig but the process' own). */
export type IngestSettings = Pick<
  IngestConfig,
  | 'mongodbUri'
  | 'redisUrl'
  | 'watch'
  | 'workers'
  | 'startAt'
  | 'acceptGap'
  | 'batchSize'
  | 'backlogLimit'
  | 'connectTimeoutMs'
>;

/** Where the stream stands: its start, and the last position stored since. */
interface Stream extends StartPlan {
  /** What the token key holds as far as this ingest knows (it wrote it last, or read it). */
  held: StoredStart | null;
}

/**
 * The ingest: one change stream in, jobs on the workers' queues out, resume token in Redis.
 * Composed of a start planner (where to start), a pipeline (read ahead, backpressure, commit,
 * save) and a failure policy (retry, reconnect, stop, accept a gap). Failures never move the
 * position forward on their own: transient ones are retried from the last committed position
 * with backoff; a lost resume point stops the process (unless the operator accepted the gap).
 */
export class Ingest extends EventEmitter<IngestEvents> {
  readonly status: IngestStatus = {
    state: 'starting',
    streamOpen: false,
    position: null,
    lastEvent: null,
    caughtUpAt: null,
    lastError: null,
    ring: null,
    leadership: null,
  };

  private readonly reader: ChangeReader;
  private readonly redis: RedisConnection;
  private readonly store: PositionPort;
  private readonly enqueuer: EnqueuerPort;
  private readonly clock: Clock;
  private readonly checkRedis: (() => Promise<void>) | undefined;
  private readonly starts: StartPlanner;
  private readonly pipeline: Pipeline;
  private readonly rings: RingKeeper | null;
  private readonly pause: IngestPause | null;
  private readonly tracing: IngestTracing | null;
  /** The worker names of the latest good workers.toml. */
  private names: readonly string[];
  private readonly abort = new AbortController();
  /** The term under way: aborted on stop(), or when the lease is lost. */
  private term: AbortSignal = this.abort.signal;
  private readonly leadership: Exclude<IngestParts['leadership'], false>;
  private loop: Promise<void> | null = null;
  /** What the token key holds as far as this process knows (undefined: not read yet). */
  private held: StoredStart | null | undefined = undefined;
  /**
   * How often the Redis connection closed, and how often it had when the start was last read and
   * when a batch was last committed: a close since the start was read stops the next commit (see
   * RedisInterruptedError); one since the last commit makes ioredis' plain errors Redis' own.
   */
  private redisCloses = { total: 0, atPlan: 0, atCommit: 0 };

  constructor(
    private readonly config: IngestSettings,
    parts: IngestParts,
    private readonly log: Logger,
  ) {
    super();
    this.reader = parts.reader;
    this.redis = parts.redis;
    this.store = parts.store;
    this.enqueuer = parts.enqueuer;
    this.clock = parts.clock ?? systemClock;
    this.checkRedis = parts.checkRedis;
    this.leadership = parts.leadership || undefined;
    this.status.leadership = parts.leadership ? parts.leadership.lease.view : null;
    this.redis.on('close', () => {
      this.redisCloses.total += 1;
    });
    const faults = parts.faults ?? (() => undefined);
    this.names = config.workers.names;
    this.pause = parts.pause ? new IngestPause(parts.pause, this.clock, log) : null;
    this.tracing = parts.tracer ? new IngestTracing(parts.tracer) : null;
    this.rings = parts.ring
      ? new RingKeeper(
          {
            ring: parts.ring,
            enqueuer: this.enqueuer,
            reader: this.reader,
            faults,
            now: () => this.clock.now(),
          },
          log,
        )
      : null;
    this.starts = new StartPlanner(
      {
        store: this.store,
        watermarks: this.enqueuer,
        snapshot: () => {
          this.setState('snapshot');
          return copySnapshot({
            source: this.reader.snapshot,
            enqueuer: this.enqueuer,
            store: this.store,
            batchSize: config.batchSize,
            log,
            signal: this.term,
          });
        },
        now: () => this.clock.now(),
      },
      config.startAt,
      log,
    );
    this.pipeline = new Pipeline(
      {
        reader: this.reader,
        enqueuer: this.enqueuer,
        store: this.store,
        clock: this.clock,
        faults,
      },
      { batchSize: config.batchSize, backlogLimit: config.backlogLimit },
      {
        backpressure: (paused) => {
          if (paused) this.setState('backpressure');
          this.emit('backpressure', paused);
        },
      },
      log,
    );
  }

  /**
   * Pings MongoDB (over the stream's own connection, in the reader thread) and Redis (over the
   * ingest's connection), for /readyz: null when the server answered within `timeoutMs`, else
   * why not.
   */
  async probe(timeoutMs: number): Promise<{ mongodb: string | null; redis: string | null }> {
    const [mongodb, redis] = await Promise.all([
      withTimeout(this.reader.ping(), timeoutMs),
      withTimeout(
        this.redis.status === 'ready'
          ? this.redis.ping().then(() => null)
          : Promise.resolve(`connection ${this.redis.status}`),
        timeoutMs,
      ),
    ]);
    return { mongodb, redis };
  }

  /**
   * New worker names (SIGHUP, the file watch): the ring changes at the next batch boundary.
   * `why` says what asked, for the log.
   */
  requestWorkers(names: readonly string[], why: string): void {
    this.names = names;
    this.rings?.request(names, why);
  }

  /** Connects, then runs until stop() or a fatal error (which rejects). */
  async start(): Promise<void> {
    await reachServers(this.reader, this.redis, this.config, {
      clock: this.clock,
      signal: this.abort.signal,
      log: this.log,
      checkRedis: this.checkRedis,
    });
    this.loop = this.lead();
    return this.loop;
  }

  /**
   * Streams while this process leads (or at once without standby ingests). A term ends when
   * the lease is lost or a fenced write is refused (another ingest took over: this one was
   * paused or cut off past its lease); the process then logs it once and waits as a standby
   * rather than exiting, so that no supervisor is needed to bring it back.
   */
  private async lead(): Promise<void> {
    const leadership = this.leadership;
    if (!leadership) return this.run(this.abort.signal);
    const { lease } = leadership;
    try {
      while (!this.stopping) {
        this.setState('standby');
        const fence = await lease.acquire(this.abort.signal);
        if (fence === null) break;
        const term = new AbortController();
        let deposed: string | null = null;
        const end = (reason: string) => {
          deposed ??= reason;
          term.abort();
        };
        lease.onLost(end);
        const onStop = () => term.abort();
        this.abort.signal.addEventListener('abort', onStop);
        this.term = term.signal;
        this.setState('starting');
        this.log.info({ fence }, 'leader: this ingest holds the lease and streams');
        let failed: unknown = null;
        let unfenced = false;
        try {
          try {
            // Every queue's fence copy and the ring's are raised before a watermark is read.
            await leadership.fence(fence);
          } catch (error) {
            if (error instanceof FencedError) throw error;
            // Redis failed right at the takeover: give the lease back and try again.
            this.log.warn({ err: error }, 'could not fence this term; giving the lease back');
            unfenced = true;
          }
          if (!unfenced) await this.run(term.signal);
        } catch (error) {
          if (error instanceof FencedError) deposed ??= error.message;
          else if (!term.signal.aborted) failed = error;
        } finally {
          this.abort.signal.removeEventListener('abort', onStop);
          lease.onLost(null);
          this.pipeline.discard();
          await this.reader.close().catch(() => undefined);
          this.status.streamOpen = false;
          await leadership.fence(null).catch(() => undefined);
        }
        if (failed !== null || this.stopping) {
          // Given back at once, so that a standby takes over without waiting for the lease.
          await lease.endTerm(true);
          if (failed !== null) throw failed;
          break;
        }
        if (unfenced) {
          await lease.endTerm(true);
          await this.clock.sleep(1000, this.abort.signal);
          continue;
        }
        await lease.endTerm(false);
        this.log.warn(
          { fence, reason: deposed ?? 'the lease was lost' },
          'deposed: this ingest lost its lease (it was paused or cut off past it, and another ingest may lead now); nothing it read since its last commit was enqueued or stored; waiting as a standby',
        );
      }
    } finally {
      await lease.close();
    }
  }

  async stop(): Promise<void> {
    if (this.abort.signal.aborted) return this.loop ?? undefined;
    this.setState('stopping');
    this.abort.abort();
    await this.loop?.catch(() => undefined);
  }

  /** Closes its parts; call after start() settled. */
  async close(): Promise<void> {
    if (this.redis.status === 'ready') await this.pause?.clear().catch(() => undefined);
    await this.reader.shutdown();
    await this.enqueuer.close().catch(() => undefined);
    this.redis.disconnect();
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

  private async run(signal: AbortSignal): Promise<void> {
    const retry = new Backoff(200, 30_000, this.clock.random);
    /**
     * Null until the start is (re)planned; `held` stays known across a Redis failure, and across
     * terms (a standby's next term): a position Redis lost meanwhile is noticed, not restarted
     * from START_AT. Another leader's writes only move it forward.
     */
    let stream: Stream | null = null;
    let held: StoredStart | null | undefined = this.held;
    let failing: string | null = null;
    let redisFailed = false;
    while (!signal.aborted) {
      try {
        if (stream === null) {
          if (redisFailed) {
            await this.enqueuer.reset();
            redisFailed = false;
          }
          this.redisCloses.atPlan = this.redisCloses.total;
          if (this.rings) {
            await this.rings.load(this.names);
            this.ringStatus();
          }
          const plan = await this.starts.plan(held);
          if (plan === null) break; // stopped during the copy
          stream = plan;
          held = this.held = plan.held;
          this.status.position = plan.position;
        }
        if (this.rings?.ready(stream.position) && stream.position) {
          // Between two batches, everything read so far committed and the token stored: the
          // batch read ahead (routed by the old ring) is dropped and read again after the switch.
          const since = performance.now();
          await this.pipeline.flush();
          this.pipeline.discard();
          await this.reader.close();
          await this.rings.apply(stream.position, since);
          this.ringStatus();
        }
        if (this.pause) {
          // At a batch boundary: what was read before is committed and its position stored.
          const request = await this.pause.asked();
          if (request) {
            await this.pipeline.flush();
            this.pipeline.discard();
            await this.reader.close();
            this.status.streamOpen = false;
            this.setState('paused');
            const at = stream.position ? describePosition(stream.position) : stream.since;
            await this.pause.hold(request, at, signal);
            continue;
          }
          await this.pause.running();
        }
        if (!this.reader.isOpen) await this.reader.open(openOptions(stream));
        const readFrom = this.tracing ? Date.now() : 0;
        const batch = await this.pipeline.next(signal);
        if (batch === null) {
          // Stopping: the last position is stored before the process lets go.
          await this.pipeline.flush();
          break;
        }
        this.streamAnswered(batch);
        // Nothing is written over a Redis that may have come back without its data.
        if (this.redisCloses.total !== this.redisCloses.atPlan) throw new RedisInterruptedError();
        if (this.tracing) {
          const span = this.tracing.enqueueing(batch, readFrom, Date.now());
          await this.commit(stream, batch).catch((error: unknown) => {
            this.tracing?.committed(span, error);
            throw error;
          });
          this.tracing.committed(span);
        } else {
          await this.commit(stream, batch);
        }
        this.redisCloses.atCommit = this.redisCloses.total;
        held = this.held = stream.held;
        if (batch.invalidated) {
          // The watched collection or database is gone: its drop/rename is enqueued; carry on
          // after the invalidate, which only startAfter (not resumeAfter) allows.
          this.log.warn(
            { position: stream.position && describePosition(stream.position) },
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
        this.pipeline.discard();
        // `held` is what Redis surely holds: the last save that succeeded.
        await this.pipeline.settle();
        if (stream) held = this.held = stream.held;
        await this.reader.close().catch(() => undefined); // the error below says what failed
        this.status.streamOpen = false;
        if (signal.aborted) break;
        // Another ingest took over: this term ends (see lead()).
        if (error instanceof FencedError) throw error;
        const since = stream?.position
          ? describePosition(stream.position)
          : (stream?.since ?? `START_AT=${this.config.startAt.kind}`);
        const redis = {
          status: this.redis.status,
          dropped: this.redisCloses.total !== this.redisCloses.atCommit,
        };
        const decision = decide(classifyFailure(error, redis), error, {
          acceptGap: this.config.acceptGap,
          since,
        });
        switch (decision.action) {
          case 'stop':
            throw decision.error;
          case 'accept-gap':
            stream = await this.acceptGap(error, since);
            held = this.held = null;
            continue;
          case 'retry': {
            const what = decision.what;
            this.status.lastError = `${what}: ${(error as Error).message}`;
            if (failing !== what) {
              this.log.warn(
                { err: error },
                `${what}; retrying with backoff from the last stored position`,
              );
              failing = what;
            }
            this.setState('retrying');
            // Everything read since the last commit is read again; the watermarks make it a
            // no-op. After a Redis failure the start is read again, and held against `held`.
            if (decision.reload) {
              stream = null;
              redisFailed = true;
            }
            await this.clock.sleep(retry.next(), signal);
          }
        }
      }
    }
    // Ended with the run: the next term's first commit must not meet this term's last save
    // (refused by its fence once the lease was lost).
    await this.pipeline.settle();
  }

  private ringStatus(): void {
    const current = this.rings?.current;
    this.status.ring = current
      ? { epoch: current.epoch, names: current.names, everyName: this.rings!.everyName }
      : null;
  }

  /** The server has answered a read. */
  private streamAnswered(batch: ReadBatch): void {
    if (!this.status.streamOpen) {
      // From here on no change is missed (with START_AT=now, "now" is this moment, not the
      // moment the process started).
      this.log.info({ watch: describeScope(this.config.watch) }, 'change stream open');
    }
    this.status.streamOpen = true;
    if (batch.count === 0 && !batch.invalidated)
      this.status.caughtUpAt = new Date(this.clock.now());
  }

  private async commit(stream: Stream, batch: ReadBatch): Promise<void> {
    const result = await this.pipeline.commit(batch, stream.position, stream.snapshotToClear);
    if (!result.saved) return;
    // Read on from here: the batch's jobs are in their queues. What Redis holds (`held`, the
    // status) follows once the save is done.
    stream.position = result.position;
    stream.snapshotToClear = false;
    const position = result.position;
    void result.stored?.then(
      () => {
        stream.held = position && { kind: 'position', position };
        this.status.position = position;
      },
      () => undefined, // the next commit, flush or settle has the error
    );
    if (batch.last) this.status.lastEvent = batch.last;
    if (batch.count > 0) {
      this.emit('committed', { tally: batch.tally, added: result.added, skipped: result.skipped });
    }
  }

  /** --accept-gap: forget the lost position and continue from now, logging the window skipped. */
  private async acceptGap(error: unknown, since: string): Promise<Stream> {
    const code = (error as { code?: unknown }).code;
    this.log.error(
      {
        gapFrom: since,
        gapTo: new Date(this.clock.now()).toISOString(),
        code,
        codeName: typeof code === 'number' ? codeName(code) : undefined,
      },
      'accepting a gap: the resume point is gone; continuing from now — changes in this window were NOT enqueued',
    );
    await this.store.clear();
    this.status.position = null;
    return {
      position: null,
      opensAt: {},
      held: null,
      snapshotToClear: false,
      since: 'now (after an accepted gap)',
    };
  }
}

/** `check`'s answer, or why there was none within `timeoutMs`. */
function withTimeout(check: Promise<string | null>, timeoutMs: number): Promise<string | null> {
  return withinTime(check, timeoutMs, () => new Error(`no answer within ${timeoutMs} ms`)).catch(
    (error: unknown) => (error as Error).message,
  );
}
