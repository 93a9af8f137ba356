// Server-wide state shared by all connections: storage engine, cursors, sessions, fail points
// and the replica-set topology this single node reports.
import { Long, ObjectId } from 'bson';
import type { Doc } from './bson/types.js';
import type { ChangeStreamReader } from './changestream/stream.js';
import type { Engine } from './storage/engine.js';
import type { Transaction } from './storage/view.js';
import type { FailPoints } from './commands/failpoints.js';

export interface FindCursorState {
  kind: 'find';
  docs: Doc[];
  pos: number;
}

export interface ChangeStreamCursorState {
  kind: 'changeStream';
  reader: ChangeStreamReader;
}

export interface Cursor {
  id: Long;
  ns: string;
  state: FindCursorState | ChangeStreamCursorState;
  sessionKey: string | undefined;
  lastUsed: number;
  busy: boolean;
  killed: boolean;
  /** Wakes a getMore waiting for events when the cursor is killed. */
  wake?: () => void;
}

export class CursorRegistry {
  private readonly cursors = new Map<string, Cursor>();

  create(ns: string, state: Cursor['state'], sessionKey: string | undefined): Cursor {
    let id: Long;
    do {
      const bytes = crypto.getRandomValues(new Uint32Array(2));
      id = Long.fromBits(bytes[0] as number, (bytes[1] as number) & 0x7fffffff);
    } while (id.isZero() || this.cursors.has(id.toString()));
    const c: Cursor = {
      id,
      ns,
      state,
      sessionKey,
      lastUsed: Date.now(),
      busy: false,
      killed: false,
    };
    this.cursors.set(id.toString(), c);
    return c;
  }

  get(id: Long): Cursor | undefined {
    return this.cursors.get(id.toString());
  }

  kill(id: Long): boolean {
    const c = this.cursors.get(id.toString());
    if (!c) return false;
    c.killed = true;
    this.cursors.delete(id.toString());
    c.wake?.();
    return true;
  }

  killSession(sessionKey: string): void {
    for (const c of [...this.cursors.values()]) if (c.sessionKey === sessionKey) this.kill(c.id);
  }

  /** Idle cursors time out after 10 minutes, like the server's cursorTimeoutMillis. */
  reap(now = Date.now(), timeoutMs = 10 * 60 * 1000): void {
    for (const c of [...this.cursors.values()])
      if (!c.busy && now - c.lastUsed > timeoutMs) this.kill(c.id);
  }

  get size(): number {
    return this.cursors.size;
  }

  all(): Cursor[] {
    return [...this.cursors.values()];
  }
}

export interface SessionState {
  lsid: Doc;
  lastUse: number;
  txnNumber?: Long;
  txn?: Transaction;
  /** Outcome of the last finished transaction, for retried commit/abort. */
  lastOutcome?: 'committed' | 'aborted';
}

export class Topology {
  readonly processId = new ObjectId();
  counter = 0;
  term = 1;
  primary = true;
  electionId = Topology.electionIdFor(1);
  private readonly waiters = new Set<() => void>();
  stepUpTimer: NodeJS.Timeout | undefined;

  static electionIdFor(term: number): ObjectId {
    return ObjectId.createFromHexString(`7fffffff${term.toString(16).padStart(16, '0')}`);
  }

  topologyVersion(): Doc {
    return { processId: this.processId, counter: Long.fromNumber(this.counter) };
  }

  changed(): void {
    this.counter++;
    for (const w of [...this.waiters]) w();
  }

  onChange(fn: () => void): () => void {
    this.waiters.add(fn);
    return () => this.waiters.delete(fn);
  }

  stepDown(seconds: number, log: (s: string) => void): void {
    this.primary = false;
    this.changed();
    clearTimeout(this.stepUpTimer);
    this.stepUpTimer = setTimeout(() => {
      this.stepUpTimer = undefined;
      this.term++;
      this.electionId = Topology.electionIdFor(this.term);
      this.primary = true;
      log(`replSetStepDown: stepdown period over, elected primary again (term ${this.term})`);
      this.changed();
    }, seconds * 1000);
    this.stepUpTimer.unref();
  }
}

export interface ServerState {
  engine: Engine;
  cursors: CursorRegistry;
  sessions: Map<string, SessionState>;
  failPoints: FailPoints;
  topology: Topology;
  host: string;
  port: number;
  replSetName: string;
  /** Present itself as a mongos (hello's `msg: "isdbgrid"`) and accept shardCollection. */
  mongos: boolean;
  /** Periodic no-op interval; 0 when disabled. */
  noopIntervalMs: number;
  startedAt: number;
  log: (line: string) => void;
  connections: Set<{ id: number }>;
  totalConnections: number;
  argv: string[];
  stopping: boolean;
  /** Access control (mongod --auth): commands need an authenticated connection. */
  authRequired: boolean;
  /** serverStatus security.authentication (SCRAM-SHA-256 is the only mechanism). */
  authStats: {
    saslSupportedMechsReceived: number;
    speculative: { received: number; successful: number };
    all: { received: number; successful: number };
  };
  /** serverStatus metrics.queryExecutor: index keys and documents examined by queries. */
  queryExecutor: { scanned: number; scannedObjects: number };
}
