/**
 * In-memory parts for an Ingest, as scheduler.test.ts's Recorder is for the worker's scheduler:
 * each records what the ingest asks of it in one shared journal, so a test reads the order of
 * commits and saves; the reader plays a script of batches and errors.
 */
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { Timestamp } from 'mongodb';
import { createLogger, type Logger, type RingEpoch } from '@changeq/shared';
import type { SnapshotBatchRequest, SnapshotSource, StartOptions } from '@changeq/source';
import {
  PositionChangedError,
  snapshotPosition,
  type LostRecord,
  type PlannedJob,
  type SnapshotProgress,
  type StartMarker,
  type StoredPosition,
  type StoredStart,
  type WatermarkKind,
} from '@changeq/store';
import type { IngestSettings } from '../src/ingest.js';
import type {
  ChangeReader,
  Clock,
  EnqueuerPort,
  PositionPort,
  ReadBatch,
  RedisConnection,
} from '../src/ports.js';

/** What the parts were asked, in order: `commit a,b`, `save T1`, `open after T0`, … */
export class Journal {
  readonly entries: string[] = [];
  add(entry: string): void {
    this.entries.push(entry);
  }
  /** The entries that start with one of `kinds`. */
  of(...kinds: string[]): string[] {
    return this.entries.filter((entry) => kinds.some((kind) => entry.startsWith(kind)));
  }
}

/** A resume token whose `_data` sorts by `n` (as real tokens sort in oplog order). */
export const token = (n: number) => ({ _data: `82${String(n).padStart(8, '0')}` });

export function position(n: number): StoredPosition {
  return {
    token: token(n),
    clusterTime: new Timestamp({ t: 1_700_000_000 + n, i: 1 }),
    wallTime: null,
    savedAt: new Date(0),
  };
}

export function job(id: string, tokenN: number, queue = 'alpha'): PlannedJob {
  return { queue, name: 'insert db.c', jobId: id, json: '{}', position: token(tokenN)._data };
}

/** A batch of `ids` ending at token `n` (ids empty: a drained batch that moved the position). */
export function batch(
  n: number,
  ids: string[],
  options: { invalidated?: boolean } = {},
): ReadBatch {
  return {
    count: ids.length,
    jobs: ids.map((id) => job(id, n)),
    tally: ids.length > 0 ? [{ namespace: 'db.c', operation: 'insert', count: ids.length }] : [],
    last: ids.length > 0 ? { clusterTime: position(n).clusterTime, wallTime: null } : null,
    token: token(n),
    invalidated: options.invalidated ?? false,
  };
}

const describeOpen = (start: StartOptions): string =>
  'startAfter' in start
    ? `open after ${start.startAfter._data}`
    : 'startAtOperationTime' in start
      ? `open at ${start.startAtOperationTime.getHighBitsUnsigned()}`
      : 'open now';

/** A batch or an error; a function is called when its step is read (to act at that moment). */
type Step = ReadBatch | Error | (() => ReadBatch | Error);

/**
 * The reader: each read plays the next step of its script (a batch, or an error to throw);
 * past the end it waits a moment and answers an empty batch at the last token, as a quiet
 * stream does after maxAwaitTimeMS.
 */
export class FakeReader implements ChangeReader {
  isOpen = false;
  reads = 0;
  private lastToken: ReadBatch['token'] = null;
  /** Snapshot documents per namespace (ids 0…n-1), read `limit` at a time. */
  collections = new Map<string, number>();

  constructor(
    private readonly journal: Journal,
    private readonly script: Step[] = [],
  ) {}

  /** Steps not read yet. */
  get left(): number {
    return this.script.length;
  }

  add(...steps: Step[]): void {
    this.script.push(...steps);
  }

  /** Connections refused before one is made (Infinity: MongoDB never answers). */
  refusals = 0;

  async connect(): Promise<void> {
    if (this.refusals > 0) {
      this.refusals -= 1;
      throw new Error('connect ECONNREFUSED 127.0.0.1:1');
    }
    this.journal.add('connect');
  }

  /** The ring histories the ingest sent, epochs as `e:names@from`. */
  rings: string[] = [];

  async setRing(epochs: readonly RingEpoch[]): Promise<void> {
    this.rings.push(epochs.map((e) => `${e.epoch}:${e.names.join('+')}@${e.from}`).join(' '));
  }

  async open(start: StartOptions): Promise<void> {
    this.journal.add(describeOpen(start));
    this.isOpen = true;
  }

  async next(): Promise<ReadBatch> {
    this.reads += 1;
    const next = this.script.shift();
    const step = typeof next === 'function' ? next() : next;
    if (step === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      return { ...batch(0, []), token: this.lastToken };
    }
    if (step instanceof Error) throw step;
    this.lastToken = step.token;
    return step;
  }

  async close(): Promise<void> {
    this.isOpen = false;
  }

  /** What a ping answers: null (MongoDB answered over the stream's connection), or why not. */
  pingAnswer: string | null = null;

  async ping(): Promise<string | null> {
    return this.pingAnswer;
  }

  async shutdown(): Promise<void> {
    this.journal.add('shutdown');
  }

  readonly snapshot: SnapshotSource = {
    begin: async () => ({
      startAt: new Timestamp({ t: 1_700_000_500, i: 0 }),
      namespaces: [...this.collections.keys()],
    }),
    read: async (request: SnapshotBatchRequest) => {
      const total = this.collections.get(request.ns) ?? 0;
      const from = request.after ? (request.after.id as number) + 1 : 0;
      const to = request.upTo
        ? (request.upTo.id as number)
        : Math.min(total - 1, from + request.limit - 1);
      const ids = Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
      return {
        jobs: ids.map((id, index) => ({
          ...job(`${request.ns}:${id}`, 0),
          position: snapshotPosition(request.seq, index),
        })),
        count: ids.length,
        last: ids.length > 0 ? { id: ids[ids.length - 1] } : null,
      };
    },
  };
}

/** The token key and the snapshot key, in memory, saved compare-and-set as PositionStore does. */
export class FakeStore implements PositionPort {
  readonly keys = {
    token: 'p:ingest:test:token',
    snapshot: 'p:ingest:test:snapshot',
    lease: 'p:ingest:test:lease',
    fence: 'p:ingest:test:fence',
    members: 'p:ingest:test:members',
    watermark: () => 'p:alpha:changeq-wm:test',
    queueFence: () => 'p:alpha:changeq-fence:test',
    ringFence: 'p:ring:fence:test',
  };
  value: StoredStart | null = null;
  snapshotProgress: SnapshotProgress | null = null;
  private held: StoredStart | null | undefined = undefined;
  /** Errors thrown by the next calls to `save`, in order (a function is called at that moment). */
  failSaves: Array<Error | (() => Error)> = [];
  /** While set, `save` waits for it (a slow Redis round trip). */
  saveGate: Promise<void> | null = null;

  constructor(private readonly journal: Journal) {}

  async loadStart(): Promise<StoredStart | null> {
    this.journal.add('load start');
    this.held = this.value;
    return this.value;
  }

  async save(stored: StoredPosition): Promise<void> {
    if (this.saveGate) await this.saveGate;
    const failure = this.failSaves.shift();
    if (failure) throw typeof failure === 'function' ? failure() : failure;
    if (this.held !== undefined && this.held !== this.value) {
      throw new PositionChangedError(this.keys.token);
    }
    this.journal.add(`save ${stored.token._data}`);
    this.value = { kind: 'position', position: stored };
    this.held = this.value;
  }

  async clear(): Promise<void> {
    this.journal.add('clear');
    this.value = null;
    this.held = null;
  }

  async markLost(record: LostRecord): Promise<void> {
    this.journal.add('mark lost');
    this.value = { kind: 'lost', record };
    this.held = this.value;
  }

  async loadSnapshot(): Promise<SnapshotProgress | null> {
    return this.snapshotProgress;
  }

  async saveSnapshot(progress: SnapshotProgress): Promise<void> {
    this.snapshotProgress = progress;
  }

  async clearSnapshot(): Promise<void> {
    this.journal.add('clear snapshot');
    this.snapshotProgress = null;
  }

  /** As Redis restarted without its data would: the key is gone. */
  lose(): void {
    this.value = null;
  }

  marker(startAt: Timestamp): void {
    const marker: StartMarker = { startAt, savedAt: new Date(0), reason: 'test' };
    this.value = { kind: 'marker', marker };
  }
}

/** The queues: commits recorded, waiting counts set by the test. */
export class FakeEnqueuer implements EnqueuerPort {
  waiting = new Map<string, number>([['alpha', 0]]);
  waitingReads = 0;
  /** While set, reads of the waiting counts wait for it. */
  countGate: Promise<void> | null = null;
  /** Errors thrown by the next calls to `commit`, in order. */
  failCommits: Error[] = [];

  constructor(private readonly journal: Journal) {}

  async commit(jobs: readonly PlannedJob[], kind: WatermarkKind) {
    const failure = this.failCommits.shift();
    if (failure) throw failure;
    if (jobs.length > 0) {
      this.journal.add(
        `commit ${kind === 'stream' ? '' : `${kind} `}${jobs.map((j) => j.jobId).join(',')}`,
      );
    }
    return { added: jobs.length, skipped: 0 };
  }

  async loadWatermarks(kind: WatermarkKind): Promise<void> {
    this.journal.add(`load watermarks ${kind}`);
  }

  async clearWatermarks(kind: WatermarkKind): Promise<void> {
    this.journal.add(`clear watermarks ${kind}`);
  }

  async reset(): Promise<void> {
    this.journal.add('reset queues');
  }

  async waitingCounts(): Promise<Map<string, number>> {
    this.waitingReads += 1;
    await this.countGate;
    return new Map(this.waiting);
  }

  /** Unfinished jobs per queue (what a handoff checks); 0 when not set. */
  unfinished = new Map<string, number>();

  async ensureQueues(names: readonly string[]): Promise<void> {
    for (const name of names) if (!this.waiting.has(name)) this.waiting.set(name, 0);
  }

  /** The highest stream watermark the queues hold (set by a test). */
  highest: string | null = null;
  highestWatermark(kind: WatermarkKind): string | null {
    return kind === 'stream' ? this.highest : null;
  }

  async unfinishedCount(name: string): Promise<number> {
    return this.unfinished.get(name) ?? 0;
  }

  async close(): Promise<void> {}
}

export class FakeRedis extends EventEmitter implements RedisConnection {
  status: RedisConnection['status'] = 'ready';
  /** The connection dropped (and came back): ioredis emits 'close'. */
  drop(): void {
    this.emit('close');
  }
  async connect(): Promise<void> {}
  async ping(): Promise<'PONG'> {
    return 'PONG';
  }
  disconnect(): void {}
}

/** Virtual time: a sleep returns at once (after other work had a turn) and moves the clock. */
export class FakeClock implements Clock {
  at = 1_800_000_000_000;
  readonly sleeps: number[] = [];
  now(): number {
    return this.at;
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
    this.sleeps.push(ms);
    this.at += ms;
    await new Promise((resolve) => setImmediate(resolve));
    return !signal?.aborted;
  }
  random(): number {
    return 0.5;
  }
}

/** A logger whose lines the test reads. */
export function capturingLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  const log = createLogger({ name: 'test', level: 'debug', pretty: false, destination });
  return { log, lines };
}

export function settings(overrides: Partial<IngestSettings> = {}): IngestSettings {
  return {
    mongodbUri: 'mongodb://127.0.0.1:1/',
    redisUrl: 'redis://127.0.0.1:2',
    watch: { kind: 'collection', db: 'db', coll: 'c' },
    workers: { names: ['alpha'], routing: new Map() } as unknown as IngestSettings['workers'],
    startAt: { kind: 'now' },
    acceptGap: false,
    batchSize: 100,
    backlogLimit: 1000,
    connectTimeoutMs: 1000,
    ...overrides,
  };
}
