// TCP server: connection handling, message dispatch, sessions/transactions, fail points,
// $clusterTime gossip and MongoDB-shaped error replies.
import net from 'node:net';
import { Binary, Long } from 'bson';
import { isPlainObject } from './bson/types.js';
import type { Doc } from './bson/types.js';
import { ensureStartupUsers } from './auth/users.js';
import type { StartupUser } from './auth/users.js';
import { authCommands, checkAuthenticated } from './commands/auth.js';
import { catalogCommands } from './commands/catalog.js';
import { refuseCollation } from './commands/collation.js';
import { refuseOnView } from './commands/views.js';
import type {
  CommandContext,
  CommandSpec,
  Connection,
  ConnectionAuth,
} from './commands/context.js';
import { crudCommands } from './commands/crud.js';
import { FailPoints } from './commands/failpoints.js';
import type { FailAction } from './commands/failpoints.js';
import { handshakeCommands } from './commands/handshake.js';
import { shardingCommands } from './commands/sharding.js';
import { resolveTransaction, sessionCommands, sessionKeyOf } from './commands/sessions.js';
import {
  MongoServerError,
  NON_RESUMABLE_CHANGE_STREAM_CODES,
  RESUMABLE_CHANGE_STREAM_CODES,
  RETRYABLE_WRITE_CODES,
} from './errors.js';
import { fromTimestamp, toTimestamp } from './history/clock.js';
import { CursorRegistry, Topology } from './state.js';
import type { ServerState, SessionState } from './state.js';
import { Engine } from './storage/engine.js';
import type { EngineOptions } from './storage/engine.js';
import { DirectView } from './storage/view.js';
import type { Transaction } from './storage/view.js';
import {
  FLAG_EXHAUST_ALLOWED,
  FLAG_MORE_TO_COME,
  Framer,
  opMsgReply,
  opReply,
  parseMessage,
  ProtocolError,
} from './wire/protocol.js';
import type { Request } from './wire/protocol.js';
import { encodeDocument } from './wire/raw.js';

const COMMANDS: Record<string, CommandSpec> = {
  ...handshakeCommands,
  ...crudCommands,
  ...catalogCommands,
  ...sessionCommands,
  ...authCommands,
  ...shardingCommands,
};

const LEGACY_ALLOWED = new Set(['hello', 'isMaster', 'ismaster']);
const READS_NEEDING_PRIMARY = new Set([
  'find',
  'aggregate',
  'count',
  'distinct',
  'listCollections',
  'listIndexes',
]);
const RETRYABLE_WRITE_COMMANDS = new Set([
  'insert',
  'update',
  'delete',
  'findAndModify',
  'findandmodify',
]);
const HELLO_COMMANDS = new Set(['hello', 'isMaster', 'ismaster']);

export interface ServerOptions {
  host: string;
  port: number;
  replSetName: string;
  /** Answer hello as a mongos router of a sharded cluster (see ServerState.mongos). */
  mongos?: boolean;
  engine: Omit<EngineOptions, 'log'>;
  /** Write a periodic no-op after this many ms without a write; 0 disables. */
  noopIntervalMs: number;
  log: (line: string) => void;
  argv?: string[];
  /** Access control like mongod --auth, and users to create (or keep) at startup. */
  auth?: { required: boolean; users: StartupUser[] };
}

class ClientConnection implements Connection {
  appName: string | undefined;
  closed = false;
  readonly auth: ConnectionAuth = {};
  private readonly closeHandlers = new Set<() => void>();
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly id: number,
    readonly socket: net.Socket,
    readonly remote: string,
  ) {}

  destroy(): void {
    this.socket.destroy();
    this.markClosed();
  }

  markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fn of [...this.closeHandlers]) fn();
  }

  onClose(fn: () => void): () => void {
    if (this.closed) {
      queueMicrotask(fn);
      return () => undefined;
    }
    this.closeHandlers.add(fn);
    return () => this.closeHandlers.delete(fn);
  }

  enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(task, task);
  }

  send(chunks: Buffer[]): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.socket.cork();
    let ok = true;
    for (const c of chunks) ok = this.socket.write(c) && ok;
    this.socket.uncork();
    if (ok) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }
}

export class MongoServer {
  readonly state: ServerState;
  private readonly server: net.Server;
  private readonly connections = new Map<number, ClientConnection>();
  private nextConnectionId = 1;
  private reaper: NodeJS.Timeout | undefined;
  private noopTimer: NodeJS.Timeout | undefined;
  /** engine.commits when the no-op writer last looked. */
  private noopSeenCommits = 0;

  private constructor(options: ServerOptions, engine: Engine) {
    this.state = {
      engine,
      cursors: new CursorRegistry(),
      sessions: new Map(),
      failPoints: new FailPoints(),
      topology: new Topology(),
      host: options.host,
      port: options.port,
      replSetName: options.replSetName,
      mongos: options.mongos ?? false,
      noopIntervalMs: options.noopIntervalMs,
      startedAt: Date.now(),
      log: options.log,
      connections: new Set(),
      totalConnections: 0,
      argv: options.argv ?? [],
      stopping: false,
      queryExecutor: { scanned: 0, scannedObjects: 0 },
      authRequired: options.auth?.required ?? false,
      authStats: {
        saslSupportedMechsReceived: 0,
        speculative: { received: 0, successful: 0 },
        all: { received: 0, successful: 0 },
      },
    };
    this.server = net.createServer((socket) => this.accept(socket));
  }

  static async start(options: ServerOptions): Promise<MongoServer> {
    const engine = Engine.open({ ...options.engine, log: options.log });
    try {
      ensureStartupUsers(engine, options.auth?.users ?? []);
    } catch (err) {
      engine.close();
      throw err;
    }
    const s = new MongoServer(options, engine);
    try {
      await new Promise<void>((resolve, reject) => {
        s.server.once('error', reject);
        s.server.listen(options.port, options.host, () => {
          s.server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      engine.close();
      throw err;
    }
    const addr = s.server.address() as net.AddressInfo;
    s.state.port = addr.port;
    // `me`/`hosts` must be an address clients can dial.
    if (options.host === '0.0.0.0' || options.host === '::') s.state.host = '127.0.0.1';
    s.reaper = setInterval(() => {
      s.state.cursors.reap();
      expireSessions(s.state.sessions);
    }, 60_000);
    s.reaper.unref();
    s.startNoopWriter(options.noopIntervalMs);
    options.log(
      `listening on ${s.state.host}:${s.state.port} (${options.mongos ? 'as a mongos' : `replica set ${options.replSetName}`})`,
    );
    return s;
  }

  get port(): number {
    return this.state.port;
  }

  async stop(): Promise<void> {
    if (this.state.stopping) return;
    this.state.stopping = true;
    clearInterval(this.reaper);
    clearInterval(this.noopTimer);
    clearTimeout(this.state.topology.stepUpTimer);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections.values()) c.destroy();
    await closed;
    this.state.engine.close();
    this.state.log('stopped');
  }

  /**
   * Like a replica-set primary's periodic no-op writer (server parameter
   * periodicNoopIntervalSecs, default 10 s): every interval, if nothing was written since the
   * last look, write a no-op so the cluster time, and the postBatchResumeToken of idle change
   * streams, keep moving. Only the primary writes them. The timer never keeps the process alive.
   */
  private startNoopWriter(intervalMs: number): void {
    if (!(intervalMs > 0)) return;
    this.noopSeenCommits = this.state.engine.commits;
    this.noopTimer = setInterval(() => this.periodicNoop(), intervalMs);
    this.noopTimer.unref();
  }

  private periodicNoop(): void {
    const { engine, topology } = this.state;
    if (this.state.stopping) return;
    if (engine.commits === this.noopSeenCommits && topology.primary) {
      try {
        engine.writeNoop();
      } catch (err) {
        this.state.log(`periodic no-op: write failed: ${(err as Error).message}`);
      }
    }
    this.noopSeenCommits = engine.commits;
  }

  private accept(socket: net.Socket): void {
    if (this.state.stopping) {
      socket.destroy();
      return;
    }
    const id = this.nextConnectionId++;
    const conn = new ClientConnection(id, socket, `${socket.remoteAddress}:${socket.remotePort}`);
    this.connections.set(id, conn);
    this.state.connections.add(conn);
    this.state.totalConnections++;
    socket.setNoDelay(true);
    const framer = new Framer();
    socket.on('data', (chunk) => {
      let messages: Buffer[];
      try {
        messages = framer.push(chunk);
      } catch (err) {
        this.state.log(`connection ${id}: ${(err as Error).message}; closing it`);
        conn.destroy();
        return;
      }
      for (const m of messages) conn.enqueue(() => this.handleMessage(conn, m));
    });
    const onGone = (): void => {
      conn.markClosed();
      this.connections.delete(id);
      this.state.connections.delete(conn);
    };
    socket.on('close', onGone);
    socket.on('error', () => conn.markClosed());
  }

  private async handleMessage(conn: ClientConnection, raw: Buffer): Promise<void> {
    if (conn.closed) return;
    let req: Request;
    try {
      req = parseMessage(raw);
    } catch (err) {
      const msg = err instanceof ProtocolError ? err.message : String(err);
      this.state.log(`connection ${conn.id}: malformed message (${msg}); closing it`);
      conn.destroy();
      return;
    }
    try {
      await this.handleRequest(conn, req);
    } catch (err) {
      // Never let a bug take the process down: report it on this connection only.
      this.state.log(
        `connection ${conn.id}: internal error: ${(err as Error).stack ?? String(err)}`,
      );
      conn.destroy();
    }
  }

  private async handleRequest(conn: ClientConnection, req: Request): Promise<void> {
    const exhaust = !req.legacy && (req.flags & FLAG_EXHAUST_ALLOWED) !== 0;
    const name = Object.keys(req.command)[0] ?? '';
    if (exhaust && HELLO_COMMANDS.has(name) && isPlainObject(req.command.topologyVersion)) {
      await this.streamHello(conn, req);
      return;
    }
    const reply = await this.runCommand(conn, req);
    if (reply === undefined || (req.flags & FLAG_MORE_TO_COME) !== 0) return;
    const body = encodeDocument(reply);
    await conn.send(
      req.legacy ? opReply(body, req.header.requestId) : opMsgReply(body, req.header.requestId),
    );
  }

  /** Streaming hello: reply with moreToCome and keep answering as the topology changes. */
  private async streamHello(conn: ClientConnection, req: Request): Promise<void> {
    const cmd = { ...req.command };
    while (!conn.closed && !this.state.stopping) {
      const reply = await this.runCommand(conn, { ...req, command: cmd });
      if (reply === undefined || conn.closed) return;
      const more = reply.ok === 1;
      await conn.send(
        opMsgReply(encodeDocument(reply), req.header.requestId, more ? FLAG_MORE_TO_COME : 0),
      );
      if (!more) return;
      cmd.topologyVersion = reply.topologyVersion;
    }
  }

  /** Run one command; undefined means the connection was closed instead of answering. */
  private async runCommand(conn: ClientConnection, req: Request): Promise<Doc | undefined> {
    const cmd = req.command;
    const name = Object.keys(cmd)[0] ?? '';
    const state = this.state;
    const db = typeof cmd.$db === 'string' ? cmd.$db : undefined;
    let txn: Transaction | undefined;
    let ctx: CommandContext | undefined;
    try {
      if (req.legacy && !LEGACY_ALLOWED.has(name)) {
        throw new MongoServerError(
          352,
          `Unsupported OP_QUERY command: ${name}. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal`,
          { codeName: 'UnsupportedOpQueryCommand' },
        );
      }
      if (db === undefined)
        throw new MongoServerError(40571, 'OP_MSG requests require a $db argument');
      const spec = COMMANDS[name];
      if (!spec) {
        state.log(`unsupported: no such command: '${name}'`);
        throw new MongoServerError(59, `no such command: '${name}'`);
      }
      checkAuthenticated(state, conn, name, db);
      const gossip = cmd.$clusterTime;
      if (
        isPlainObject(gossip) &&
        (gossip.clusterTime as { _bsontype?: string })?._bsontype === 'Timestamp'
      ) {
        state.engine.clock.advance(fromTimestamp(gossip.clusterTime as never));
      }
      const collArg = cmd[name];
      const ns = typeof collArg === 'string' ? `${db}.${collArg}` : `${db}.$cmd`;
      const action = state.failPoints.evaluate(name, conn.appName, ns);
      if (action) {
        state.log(
          `failCommand: ${name} on connection ${conn.id} (appName ${conn.appName ?? 'none'}): ${action.closeConnection ? 'closing the connection' : `error ${action.errorCode ?? '(none)'}`}`,
        );
        const injected = await this.applyFailAction(conn, action);
        if (injected === 'closed') return undefined;
        if (injected) throw injected;
      }
      refuseCollation(name, cmd);
      refuseOnView(state.engine.catalog, name, db, cmd);
      if (spec.adminOnly && db !== 'admin') {
        throw new MongoServerError(13, `${name} may only be run against the admin database.`, {
          codeName: 'Unauthorized',
        });
      }
      const sessionKey = sessionKeyOf(cmd.lsid);
      if (sessionKey) {
        let session = state.sessions.get(sessionKey);
        if (!session) {
          session = { lsid: cmd.lsid as Doc, lastUse: Date.now() };
          state.sessions.set(sessionKey, session);
        }
        session.lastUse = Date.now();
        txn = resolveTransaction(state, session, cmd, name);
      } else if (cmd.txnNumber !== undefined) {
        throw new MongoServerError(
          72,
          'Transaction numbers are only allowed on a replica set member or mongos',
          { codeName: 'InvalidOptions' },
        );
      }
      if (txn && !spec.inTxn) {
        throw new MongoServerError(263, `Cannot run '${name}' in a multi-document transaction.`, {
          codeName: 'OperationNotSupportedInTransaction',
        });
      }
      if (!state.topology.primary) {
        if (spec.write) throw new MongoServerError(10107, 'not primary');
        const rp = cmd.$readPreference as { mode?: string } | undefined;
        if (READS_NEEDING_PRIMARY.has(name) && (!rp || rp.mode === 'primary')) {
          throw new MongoServerError(13435, 'not primary and secondaryOk=false');
        }
      }
      ctx = {
        state,
        conn,
        db,
        name,
        cmd,
        view: txn ?? new DirectView(state.engine),
        txn,
        sessionKey,
      };
      const reply = await spec.handler(ctx);
      if (
        txn &&
        txn.state === 'inProgress' &&
        Array.isArray(reply.writeErrors) &&
        reply.writeErrors.length > 0
      ) {
        // A failed statement aborts the transaction, as on a real server.
        txn.state = 'aborted';
      }
      if (action?.writeConcernError) reply.writeConcernError = action.writeConcernError;
      return this.finish(reply);
    } catch (err) {
      if (txn && txn.state === 'inProgress' && name !== 'commitTransaction') txn.state = 'aborted';
      return this.finish(this.errorReply(err, name, cmd, ctx));
    } finally {
      const flushed = state.engine.flushed();
      if (flushed) await flushed;
    }
  }

  private async applyFailAction(
    conn: ClientConnection,
    action: FailAction,
  ): Promise<MongoServerError | 'closed' | undefined> {
    if (action.blockTimeMS > 0) await new Promise((r) => setTimeout(r, action.blockTimeMS));
    if (action.closeConnection) {
      conn.destroy();
      return 'closed';
    }
    if (action.errorCode !== undefined) {
      return new MongoServerError(
        action.errorCode,
        action.errmsg ?? "Failing command via 'failCommand' failpoint",
        { labelOverride: action.errorLabels },
      );
    }
    return undefined;
  }

  private errorReply(err: unknown, name: string, cmd: Doc, ctx: CommandContext | undefined): Doc {
    if (!(err instanceof MongoServerError)) {
      this.state.log(`internal error in ${name}: ${(err as Error).stack ?? String(err)}`);
      return {
        ok: 0,
        errmsg: `internal error: ${(err as Error).message}`,
        code: 1,
        codeName: 'InternalError',
      };
    }
    const reply = err.toReply();
    if (reply.unsupported) {
      delete reply.unsupported;
      this.state.log(`unsupported: ${name}: ${err.message}`);
    }
    if (err.labelOverride) {
      if (err.labelOverride.length > 0) reply.errorLabels = err.labelOverride;
      else delete reply.errorLabels;
      return reply;
    }
    const labels = new Set(err.errorLabels);
    let writeOrTxnLabel = false;
    const retryableWrite =
      RETRYABLE_WRITE_COMMANDS.has(name) &&
      cmd.txnNumber !== undefined &&
      cmd.autocommit === undefined;
    const txnEnd = name === 'commitTransaction' || name === 'abortTransaction';
    if ((retryableWrite || txnEnd) && RETRYABLE_WRITE_CODES.has(err.code)) {
      labels.add('RetryableWriteError');
      writeOrTxnLabel = true;
    }
    if (
      ctx?.txn &&
      !txnEnd &&
      (RETRYABLE_WRITE_CODES.has(err.code) || err.code === 112 || err.code === 251)
    ) {
      labels.add('TransientTransactionError');
      writeOrTxnLabel = true;
    }
    // As ErrorLabelBuilder: ResumableChangeStreamError only when the server knows the command
    // belongs to a change stream (its aggregate, or a getMore that checked out such a cursor),
    // and never alongside the two labels above.
    if (
      !writeOrTxnLabel &&
      RESUMABLE_CHANGE_STREAM_CODES.has(err.code) &&
      this.isChangeStreamCommand(name, cmd, err)
    ) {
      labels.add('ResumableChangeStreamError');
    } else if (NON_RESUMABLE_CHANGE_STREAM_CODES.has(err.code)) {
      labels.add('NonResumableChangeStreamError');
    }
    if (labels.size > 0) reply.errorLabels = [...labels];
    else delete reply.errorLabels;
    return reply;
  }

  private isChangeStreamCommand(name: string, cmd: Doc, err: MongoServerError): boolean {
    if (name === 'aggregate') {
      const first = Array.isArray(cmd.pipeline) ? (cmd.pipeline[0] as unknown) : undefined;
      return isPlainObject(first) && '$changeStream' in first;
    }
    return name === 'getMore' && err.changeStreamCursor;
  }

  private finish(reply: Doc): Doc {
    const now = toTimestamp(this.state.engine.clock.now());
    reply.$clusterTime = { clusterTime: now, signature: { hash: ZERO_HASH, keyId: Long.ZERO } };
    reply.operationTime = now;
    return reply;
  }
}

const ZERO_HASH = new Binary(Buffer.alloc(20), 0);

/**
 * Forget sessions unused for logicalSessionTimeoutMinutes (30, as hello reports), as MongoDB
 * does: a client killed without endSessions must not leave them behind for the server's life.
 */
export function expireSessions(sessions: Map<string, SessionState>, now = Date.now()): void {
  for (const [key, session] of sessions) {
    if (now - session.lastUse > 30 * 60_000) sessions.delete(key);
  }
}
