import { Worker } from 'node:worker_threads';
import { Timestamp } from 'mongodb';
import type { ResumeToken } from '@changeq/shared';
import type { PlannedJob } from '@changeq/store';
import type { IngestConfig, StartOptions } from '@changeq/source';
import { StreamReadError } from '../failures.js';
import {
  encodeMatch,
  encodeStart,
  type EventTally,
  type ReaderInit,
  type ReaderReply,
  type ReaderRequest,
  type WireBatch,
} from './protocol.js';

/** A batch of the change stream, read and planned: what the main thread commits. */
export interface ReadBatch {
  /** Number of change events in the batch (never counting an invalidate). */
  count: number;
  /** Their jobs, in oplog order (a namespace-wide event is one job per worker). */
  jobs: PlannedJob[];
  /** Events per namespace and operation. */
  tally: EventTally[];
  /** Cluster and wall time of the batch's last event. */
  last: { clusterTime: Timestamp | null; wallTime: Date | null } | null;
  /** The position after this batch (see Batch.token in @changeq/source's change-source.ts). */
  token: ResumeToken | null;
  /** The stream was invalidated (its collection or database dropped or renamed). */
  invalidated: boolean;
}

type Request = ReaderRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, 'id'>
    : never
  : never;

/**
 * The ingest's change stream, read by a worker thread (reader/thread.ts). Calls are queued to the
 * thread and answered in order. A thread that dies fails every call with the reason, and the
 * ingest stops: that is a bug, not a condition to retry.
 */
export class StreamReader {
  private readonly worker: Worker;
  private readonly pending = new Map<
    number,
    { resolve: (result: WireBatch | null) => void; reject: (error: Error) => void }
  >();
  private nextId = 1;
  private opened = false;
  private dead: Error | null = null;
  private readonly exited: Promise<void>;

  constructor(config: IngestConfig, appName: string) {
    const init: ReaderInit = {
      mongodbUri: config.mongodbUri,
      appName,
      serverSelectionTimeoutMS: Math.min(config.connectTimeoutMs, 30_000),
      workers: config.workers.names,
      source: {
        watch: config.watch,
        fullDocument: config.fullDocument,
        fullDocumentBeforeChange: config.fullDocumentBeforeChange,
        batchSize: config.batchSize,
        maxAwaitTimeMs: config.maxAwaitTimeMs,
        matchJson: encodeMatch(config.match),
      },
    };
    this.worker = new Worker(new URL('./thread.js', import.meta.url), { workerData: init });
    this.worker.on('message', (reply: ReaderReply) => {
      const call = this.pending.get(reply.id);
      if (!call) return;
      this.pending.delete(reply.id);
      if (reply.ok) call.resolve(reply.result);
      else call.reject(new StreamReadError(reply.error));
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
    this.opened = false;
    for (const call of this.pending.values()) call.reject(this.dead);
    this.pending.clear();
  }

  private call(request: Request): Promise<WireBatch | null> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...request, id });
    });
  }

  get isOpen(): boolean {
    return this.opened;
  }

  /** Opens the stream at `start`; the server is first asked by the next read. */
  async open(start: StartOptions): Promise<void> {
    await this.call({ op: 'open', start: encodeStart(start) });
    this.opened = true;
  }

  /** The events the server has ready (waiting up to maxAwaitTimeMS), at most `max`. */
  async next(max: number): Promise<ReadBatch> {
    const wire = await this.call({ op: 'next', max });
    if (!wire) throw new Error('the stream reader answered a read without a batch');
    const last = wire.last;
    return {
      ...wire,
      last: last && {
        clusterTime: last.clusterTime && new Timestamp(last.clusterTime),
        wallTime: last.wallTime,
      },
    };
  }

  async close(): Promise<void> {
    this.opened = false;
    if (!this.dead) await this.call({ op: 'close' });
  }

  /** Closes the stream and its connection, and ends the thread (forcibly after `timeoutMs`). */
  async shutdown(timeoutMs = 5000): Promise<void> {
    if (!this.dead) await this.call({ op: 'shutdown' }).catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), timeoutMs);
    });
    if ((await Promise.race([this.exited, late])) === 'late') await this.worker.terminate();
    clearTimeout(timer);
  }
}
