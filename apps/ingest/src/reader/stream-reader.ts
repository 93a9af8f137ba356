import { Worker } from 'node:worker_threads';
import { UserError, isRedisClusterUrl, routingSpec, type RingEpoch } from '@changeq/shared';
import type { IngestConfig } from '@changeq/source';
import type { SnapshotSource, StartOptions } from '@changeq/source/stream';
import { ReadError, type ChangeReader, type ReadBatch } from '../ports.js';
import {
  decodeSnapshotBatch,
  decodeSnapshotStart,
  decodeTime,
  encodeMatch,
  encodePipeline,
  encodeSnapshotRequest,
  encodeStart,
  type ReaderInit,
  type ReaderOp,
  type ReaderOps,
  type ReaderReply,
  type ReaderStarted,
} from './protocol.js';

/**
 * The reader thread's heap bound. Left to V8's defaults its old generation grows far beyond what
 * it holds before collecting (25-30 MB more RSS while draining a backlog). What it holds at
 * most is one batch: the driver's buffer of one server reply (MongoDB caps a reply at 16 MiB of
 * BSON; a snapshot batch stops after 8 MiB plus one document of at most 16 MiB), those documents
 * decoded (about 2.5x their BSON) and their jobs' JSON text (about 2x): about 16 + 16 x 4.5 =
 * 88 MB for a stream batch, 16 + 24 x 4.5 = 124 MB for a snapshot batch of the largest
 * documents. A batch also holds a whole transaction and a split event's joined fragments: an
 * event of 46.5 MB (three 15.5 MB fields, the most three fragments carry) passed within it, its
 * strings kept once; a transaction of very many events may not. A thread that still exceeds it
 * fails with the reason and the ingest stops (see the class comment). The young generation stays V8's: limiting it cost about 10 µs of CPU per
 * event in garbage collection for about 20 MB.
 */
const READER_LIMITS = { maxOldGenerationSizeMb: 128 };

/**
 * The ingest's change stream, read by a worker thread (reader/thread.ts) over its own MongoDB
 * connection. Calls are queued to the thread and answered in order (a ping is answered at
 * once). A thread that dies fails every call with the reason, and the ingest stops: that is a
 * bug, not a condition to retry.
 */
export class StreamReader implements ChangeReader {
  private readonly worker: Worker;
  private readonly pending = new Map<
    number,
    { resolve: (result: unknown) => void; reject: (error: Error) => void }
  >();
  private nextId = 1;
  private opened = false;
  private dead: Error | null = null;
  private readonly exited: Promise<void>;
  private settleStarted!: (error: Error | null) => void;
  /**
   * Settled by the thread's first message: fulfilled once it has its MongoDB client, rejected
   * with a UserError when the driver refused MONGODB_URI (or with the reason the thread died).
   */
  readonly started: Promise<void>;

  readonly snapshot: SnapshotSource = {
    begin: async () => decodeSnapshotStart(await this.call('snapshotBegin', {})),
    read: async (request) =>
      decodeSnapshotBatch(
        await this.call('snapshotRead', { batch: encodeSnapshotRequest(request) }),
      ),
  };

  /** `thread`: the thread's built module (the tests run this class from its source). */
  constructor(
    config: IngestConfig,
    appName: string,
    thread: URL = new URL('./thread.js', import.meta.url),
  ) {
    const init: ReaderInit = {
      mongodbUri: config.mongodbUri,
      appName,
      serverSelectionTimeoutMS: Math.min(config.connectTimeoutMs, 30_000),
      hashTags: isRedisClusterUrl(config.redisUrl),
      // Until the ingest reads the stored ring: epoch 1 of the file's names.
      ring: [{ epoch: 1, names: config.workers.names, from: '' }],
      source: {
        watch: config.watch,
        fullDocument: config.fullDocument,
        fullDocumentBeforeChange: config.fullDocumentBeforeChange,
        expandedEvents: config.expandedEvents,
        splitLargeEvents: config.splitLargeEvents,
        batchSize: config.batchSize,
        maxAwaitTimeMs: config.maxAwaitTimeMs,
        matchJson: encodeMatch(config.match),
        pipelineJson: encodePipeline(config.pipeline),
      },
      routing: Object.fromEntries(
        [...config.workers.routing].map(([ns, rule]) => [ns, routingSpec(rule)]),
      ),
    };
    this.started = new Promise<void>((resolve, reject) => {
      this.settleStarted = (error) => (error ? reject(error) : resolve());
    });
    this.started.catch(() => undefined); // whoever awaits it sees the error; nobody must
    this.worker = new Worker(thread, { workerData: init, resourceLimits: READER_LIMITS });
    this.worker.on('message', (reply: ReaderReply | ReaderStarted) => {
      if ('started' in reply) {
        if (reply.started) this.settleStarted(null);
        else this.fail(new UserError(reply.problem, reply.fix));
        return;
      }
      const call = this.pending.get(reply.id);
      if (!call) return;
      this.pending.delete(reply.id);
      if (reply.ok) call.resolve(reply.result);
      else {
        const { message, failure, ...details } = reply.error;
        call.reject(new ReadError(message, failure, details));
      }
    });
    this.worker.on('error', (error) => this.fail(error));
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', (code) => {
        this.fail(new Error(`the change stream reader thread exited (code ${code})`));
        resolve();
      });
    });
  }

  private fail(error: Error): void {
    this.dead ??= error;
    this.settleStarted(this.dead);
    this.opened = false;
    for (const call of this.pending.values()) call.reject(this.dead);
    this.pending.clear();
  }

  private call<K extends ReaderOp>(
    op: K,
    request: ReaderOps[K]['request'],
  ): Promise<ReaderOps[K]['reply']> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (result: unknown) => void, reject });
      this.worker.postMessage({ ...request, op, id });
    });
  }

  get isOpen(): boolean {
    return this.opened;
  }

  async connect(): Promise<void> {
    await this.call('connect', {});
  }

  async open(start: StartOptions): Promise<void> {
    await this.call('open', { start: encodeStart(start) });
    this.opened = true;
  }

  async next(max: number): Promise<ReadBatch> {
    const wire = await this.call('next', { max });
    const last = wire.last;
    return {
      ...wire,
      last: last && {
        clusterTime: last.clusterTime && decodeTime(last.clusterTime),
        wallTime: last.wallTime,
      },
    };
  }

  async close(): Promise<void> {
    this.opened = false;
    if (!this.dead) await this.call('close', {});
  }

  async setRing(epochs: readonly RingEpoch[]): Promise<void> {
    await this.call('ring', {
      epochs: epochs.map(({ epoch, names, from }) => ({ epoch, names, from })),
    });
  }

  async ping(): Promise<string | null> {
    return this.call('ping', {}).catch((error: Error) => error.message);
  }

  /** Closes the stream and its connection, and ends the thread (forcibly after `timeoutMs`). */
  async shutdown(timeoutMs = 5000): Promise<void> {
    if (!this.dead) await this.call('shutdown', {}).catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), timeoutMs);
    });
    if ((await Promise.race([this.exited, late])) === 'late') await this.worker.terminate();
    clearTimeout(timer);
  }
}
