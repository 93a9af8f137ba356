/**
 * The system under test for one row: an ingest and a worker per name (each supervised: started
 * again when killed), the recording handlers, the writer, and the tail of every enqueue. Each
 * row has a database, a Redis key prefix and an ingest id of its own, so rows never see each
 * other's changes, jobs or positions while they share the servers.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ChangeStreamDocument, type Timestamp } from 'mongodb';
import { RingRouter } from '@changeq/shared';
import { planEvent } from '@changeq/source';
import {
  RingStore,
  eventQueueName,
  ingestKeys,
  parseLeaseValue,
  workerKeys,
} from '@changeq/store';
import {
  CallLog,
  Supervised,
  changesSince,
  recordingHandlersPath,
  waitFor,
  workersFile,
  writeChaos,
  type WriteTally,
} from '@changeq/testkit';
import { EnqueueLog } from './enqueues.js';
import type { Servers } from './servers.js';
import { COLLECTIONS, LEASE_TTL_MS, WORKER_NAMES, type Settings } from './settings.js';

function workersToml(names: readonly string[]): string {
  return `workers = ${JSON.stringify(names)}\n\n[defaults]\nconcurrency = 8\nattempts = 20\nbackoff_ms = 20\nmax_backoff_ms = 500\n`;
}

const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((name) => b.includes(name));

/** What a row asks of its system. */
export interface SystemSetup {
  id: string;
  /**
   * `database` (default): the ingest watches the row's database. `collection`: only its
   * collection `a`, so dropping or renaming it invalidates the change stream.
   */
  watch?: 'database' | 'collection';
  /** Worker names that get a second process, a standby that takes over when the lease expires. */
  standbys?: readonly string[];
  /** Names the row may add to workers.toml while writing (their queues are tailed from the start). */
  addedNames?: readonly string[];
  /** A second ingest process with the same settings: a standby that takes over the ingest lease. */
  standbyIngest?: boolean;
  /** Most documents a transaction of the writer touches (default 3). */
  transactionSize?: number;
  /** The ingest's BATCH_SIZE (default 200). */
  batchSize?: number;
  /**
   * A routing key (workers.toml's `[routing]`) for every collection of the writer, e.g.
   * `fullDocument.v`. The collections then keep pre- and post-images, which the ingest reads
   * (FULL_DOCUMENT=required, FULL_DOCUMENT_BEFORE_CHANGE=required), and so does `truth()`.
   */
  routingKey?: string;
}

export class System {
  /** The names of workers.toml as the row last wrote it. */
  names: readonly string[] = WORKER_NAMES;
  /** workers.toml, rewritten by `setNames`. */
  readonly workersPath: string;
  readonly db: string;
  readonly prefix: string;
  readonly ingestId: string;
  readonly recordFile: string;
  private readonly logPrefix: string;
  readonly calls: CallLog;
  readonly enqueues: EnqueueLog;
  /** The first ingest process (the only one unless the row has a standby ingest). */
  readonly ingest: Supervised;
  /** Every ingest process: the first, and the standby of a row with `standbyIngest`. */
  readonly ingests: Supervised[];
  /** Per worker name, its processes (the first one starts first and takes the lease). */
  readonly workers = new Map<string, Supervised[]>();
  readonly from: Timestamp;
  private readonly env: NodeJS.ProcessEnv;

  constructor(
    readonly servers: Servers,
    readonly setup: SystemSetup,
    from: Timestamp,
    runDir: string,
    index: number,
  ) {
    this.from = from;
    const tag = setup.id.replace(/[^a-z0-9]/gi, '_');
    this.db = `chaos_${index}_${tag}`;
    this.prefix = `cq${index}`;
    this.ingestId = `row${index}`;
    this.logPrefix = join(runDir, `${index}-${setup.id}`);
    this.recordFile = `${this.logPrefix}.calls.jsonl`;
    this.calls = new CallLog(this.recordFile);
    this.enqueues = new EnqueueLog(servers.redisUrl, this.prefix, [
      ...this.names,
      ...(setup.addedNames ?? []),
    ]);
    this.workersPath = workersFile(workersToml(this.names) + this.routingToml);
    this.env = {
      MONGODB_URI: servers.mongodbUri,
      REDIS_URL: servers.redisUrl,
      WORKERS_FILE: this.workersPath,
      QUEUE_PREFIX: this.prefix,
      LOG_LEVEL: 'info',
    };
    const ingestEnv = {
      ...this.env,
      WATCH: this.watch,
      INGEST_ID: this.ingestId,
      START_AT: new Date(from.high * 1000).toISOString(),
      // Completed jobs are removed at once, so an event enqueued twice is a second job (with the
      // default, BullMQ would refuse the second add while the first is kept, hiding it).
      KEEP_COMPLETED_COUNT: '0',
      BATCH_SIZE: String(setup.batchSize ?? 200),
      MAX_AWAIT_TIME_MS: '200',
      INGEST_LEASE_TTL_MS: String(LEASE_TTL_MS),
      ...(setup.routingKey === undefined
        ? {}
        : { FULL_DOCUMENT: 'required', FULL_DOCUMENT_BEFORE_CHANGE: 'required' }),
    };
    this.ingests = (setup.standbyIngest ? ['ingest', 'ingest-b'] : ['ingest']).map(
      (name) => new Supervised(name, 'ingest', [], ingestEnv),
    );
    this.ingest = this.ingests[0]!;
    for (const name of this.names) {
      const count = setup.standbys?.includes(name) ? 2 : 1;
      this.workers.set(
        name,
        Array.from({ length: count }, () => this.startWorker(name)),
      );
    }
  }

  /** workers.toml's `[routing]` for the row's collections (empty without a routing key). */
  get routingToml(): string {
    const key = this.setup.routingKey;
    if (key === undefined) return '';
    return `\n[routing]\n${COLLECTIONS.map((coll) => `"${this.db}.${coll}" = "${key}"\n`).join('')}`;
  }

  /** WATCH for the row's scope. */
  get watch(): string {
    return this.setup.watch === 'collection' ? `${this.db}.a` : this.db;
  }

  private startWorker(name: string): Supervised {
    return new Supervised(name, 'worker', ['--name', name, '--handlers', recordingHandlersPath()], {
      ...this.env,
      LEASE_TTL_MS: String(LEASE_TTL_MS),
      LOCK_DURATION_MS: '5000',
      CHANGEQ_RECORD_FILE: this.recordFile,
      CHANGEQ_RECORD_FAIL_RATE: '0.02',
      CHANGEQ_RECORD_SLEEP_MAX_MS: '20',
    });
  }

  /**
   * Rewrites workers.toml with `names` and sends the ingest SIGHUP (as an operator would; it
   * also watches the file), then waits until the ingest stored the ring epoch that has them. A
   * name's worker is started with `startName`, before or after: a removed name's keeps running.
   */
  async setNames(names: readonly string[], timeoutMs = 30_000): Promise<number> {
    const before = (await this.ring()).current.epoch;
    writeFileSync(this.workersPath, workersToml(names) + this.routingToml);
    this.names = names;
    for (const ingest of this.ingests) ingest.signal('SIGHUP');
    let epoch = before;
    await waitFor(
      async () => {
        const current = (await this.ring()).current;
        epoch = current.epoch;
        return current.epoch > before && sameSet(current.names, names);
      },
      `the ingest to store a ring epoch with ${names.join(', ')}`,
      timeoutMs,
    );
    return epoch;
  }

  /** Starts the worker process of a name added by the row. */
  startName(name: string): Supervised {
    const worker = this.startWorker(name);
    this.workers.set(name, [...(this.workers.get(name) ?? []), worker]);
    return worker;
  }

  /** The ring the ingest stored (its epochs, oldest first). */
  async ring(): Promise<RingRouter> {
    const epochs = await new RingStore(this.servers.redisClient, this.prefix).load();
    if (!epochs) throw new Error(`no ring stored under the prefix ${this.prefix} yet`);
    return new RingRouter(epochs);
  }

  /** Which worker each change should reach by the ring's epochs (for rows that change names). */
  async ringRoute(): Promise<(event: ChangeStreamDocument) => { worker: string; jobId: string }[]> {
    const ring = await this.ring();
    const workerOf = new Map(
      [...this.workers.keys()].map((name) => [eventQueueName(name), name] as const),
    );
    return (event) =>
      planEvent(event, ring).map((job) => ({ worker: workerOf.get(job.queue)!, jobId: job.jobId }));
  }

  /** Every supervised process of the row: the ingest first. */
  get supervised(): Supervised[] {
    return [...this.ingests, ...[...this.workers.values()].flat()];
  }

  /** Waits until the change stream is open and every worker name's lease is held. */
  async ready(timeoutMs = 60_000): Promise<void> {
    if (this.setup.routingKey !== undefined) {
      // Before the writer's first insert: every event of the row then has its images.
      const db = this.servers.admin.db(this.db);
      for (const coll of COLLECTIONS) {
        await db.createCollection(coll, { changeStreamPreAndPostImages: { enabled: true } });
      }
    }
    let leader: Supervised | undefined;
    await waitFor(
      async () => (leader = await this.ingestLeader()) !== undefined,
      'an ingest to take the lease',
      timeoutMs,
    );
    await leader!.current.waitForLine(/change stream open/, timeoutMs);
    await waitFor(
      async () =>
        (await Promise.all(this.names.map((name) => this.leaseHolder(name)))).every(
          (pid) => pid !== null,
        ),
      'every worker name to have an active process',
      timeoutMs,
    );
  }

  /** The pid of the process holding the name's lease (from Redis), or null. */
  async leaseHolder(name: string): Promise<number | null> {
    const raw = await this.servers.redisClient.get(workerKeys(this.prefix, name).lease);
    if (!raw) return null;
    return (JSON.parse(raw) as { pid?: number }).pid ?? null;
  }

  /** The ingest process that holds the ingest lease now (from Redis), if any. */
  async ingestLeader(): Promise<Supervised | undefined> {
    const raw = await this.servers.redisClient.get(ingestKeys(this.prefix, this.ingestId).lease);
    const pid = parseLeaseValue(raw)?.pid;
    return this.ingests.find((ingest) => ingest.current.pid === pid);
  }

  /** The supervised process of `name` whose current pid is `pid`. */
  workerByPid(name: string, pid: number): Supervised | undefined {
    return this.workers.get(name)?.find((worker) => worker.current.pid === pid);
  }

  /** Starts the writer; `stop()` ends it and says what it did. */
  startWriter(settings: Settings, seed: number): { stop(): Promise<WriteTally> } {
    const abort = new AbortController();
    const writing = writeChaos(this.servers.mongodbUri, {
      operations: Infinity,
      documents: settings.documents,
      collections: COLLECTIONS,
      db: this.db,
      writers: 4,
      seed,
      tolerateErrors: true,
      signal: abort.signal,
      ratePerSecond: settings.writeRate,
      ...(this.setup.transactionSize ? { transactionSize: this.setup.transactionSize } : {}),
    });
    writing.catch(() => undefined); // awaited in stop()
    return {
      stop: async () => {
        abort.abort();
        return writing;
      },
    };
  }

  /** The server's own record of the row's changes, narrowed to what the ingest watches. */
  async truth(): Promise<ChangeStreamDocument[]> {
    // Read at database level even for a collection scope: a collection's stream ends at its
    // invalidate, while the ingest goes on after it.
    const all =
      this.setup.routingKey === undefined
        ? await changesSince(this.servers.admin.db(this.db), this.from, [], 700)
        : await changesSince(this.servers.admin.db(this.db), this.from, [], 700, {
            fullDocument: 'required',
            fullDocumentBeforeChange: 'required',
          });
    if (this.setup.watch !== 'collection') return all;
    return all.filter((event) => (event as { ns?: { coll?: string } }).ns?.coll === 'a');
  }

  /** Ends every process of the row (SIGKILL, by PID). */
  async stop(): Promise<void> {
    await Promise.all(this.supervised.map((process) => process.stop()));
    // Every process's log beside the call record, for whoever investigates a failed row.
    for (const process of this.supervised) {
      for (const run of process.processes) {
        writeFileSync(`${this.logPrefix}.${process.name}-${run.pid}.log`, run.output());
      }
    }
    await this.enqueues.close().catch(() => undefined);
  }
}
