// Handshake and diagnostics: hello / isMaster describing a one-member replica set, awaitable
// hello (topologyVersion + maxAwaitTimeMS, see the SDAM "Server Monitoring" spec), buildInfo,
// serverStatus and the other commands drivers and tools send when they connect.
import os from 'node:os';
import { Binary, Int32, Long } from 'bson';
import { isNumeric, isPlainObject, toNumber } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { badValue, MongoServerError } from '../errors.js';
import { toTimestamp } from '../history/clock.js';
import { helloAuthFields } from './auth.js';
import type { CommandContext, CommandSpec } from './context.js';

export const SERVER_VERSION = '7.0.0';
export const MAX_WIRE_VERSION = 21;
export const MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024;
export const MAX_MESSAGE_SIZE_BYTES = 48_000_000;
export const MAX_WRITE_BATCH_SIZE = 100_000;

/**
 * hello as a mongos answers it: `msg: "isdbgrid"` is what drivers recognise a mongos by (the
 * SDAM spec's server type Mongos, which makes the topology Sharded); no replica set fields.
 */
function mongosHelloReply(ctx: CommandContext, legacy: boolean): Doc {
  const reply: Doc = { topologyVersion: ctx.state.topology.topologyVersion() };
  if (legacy) reply.ismaster = true;
  else reply.isWritablePrimary = true;
  reply.msg = 'isdbgrid';
  return withServerFields(ctx, reply);
}

/** What every hello reply ends with, a mongod's or a mongos': limits, versions, session, auth. */
function withServerFields(ctx: CommandContext, reply: Doc): Doc {
  Object.assign(reply, {
    maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
    maxMessageSizeBytes: MAX_MESSAGE_SIZE_BYTES,
    maxWriteBatchSize: MAX_WRITE_BATCH_SIZE,
    localTime: new Date(),
    logicalSessionTimeoutMinutes: 30,
    connectionId: ctx.conn.id,
    minWireVersion: 0,
    maxWireVersion: MAX_WIRE_VERSION,
    readOnly: false,
  });
  if (ctx.cmd.helloOk === true) reply.helloOk = true;
  Object.assign(reply, helloAuthFields(ctx));
  reply.ok = 1;
  return reply;
}

export function helloReply(ctx: CommandContext, legacy: boolean): Doc {
  const { state } = ctx;
  if (state.mongos) return mongosHelloReply(ctx, legacy);
  const me = `${state.host}:${state.port}`;
  const primary = state.topology.primary;
  const lastTs = toTimestamp(state.engine.lastWriteTs());
  const lastDate = new Date();
  const reply: Doc = {
    topologyVersion: state.topology.topologyVersion(),
    hosts: [me],
    setName: state.replSetName,
    setVersion: 1,
  };
  if (legacy) reply.ismaster = primary;
  else reply.isWritablePrimary = primary;
  Object.assign(reply, {
    secondary: !primary,
  });
  if (primary) reply.primary = me;
  Object.assign(reply, {
    me,
    electionId: state.topology.electionId,
    lastWrite: {
      opTime: { ts: lastTs, t: Long.fromNumber(state.topology.term) },
      lastWriteDate: lastDate,
      majorityOpTime: { ts: lastTs, t: Long.fromNumber(state.topology.term) },
      majorityWriteDate: lastDate,
    },
  });
  return withServerFields(ctx, reply);
}

/** hello/isMaster; awaitable when the client sends topologyVersion and maxAwaitTimeMS. */
async function hello(ctx: CommandContext): Promise<Doc> {
  const legacy = ctx.name !== 'hello';
  const { cmd, state } = ctx;
  if (isPlainObject(cmd.client) && isPlainObject(cmd.client.application)) {
    const name = cmd.client.application.name;
    if (typeof name === 'string') ctx.conn.appName = name;
  }
  const tv = cmd.topologyVersion;
  if (isPlainObject(tv) && cmd.maxAwaitTimeMS !== undefined) {
    if (!isNumeric(cmd.maxAwaitTimeMS) || toNumber(cmd.maxAwaitTimeMS) < 0) {
      throw badValue('maxAwaitTimeMS must be a non-negative integer');
    }
    const current = state.topology.topologyVersion();
    const sameProcess = String(tv.processId) === String(current.processId);
    if (sameProcess && toNumber(tv.counter) === toNumber(current.counter)) {
      // Nothing changed since the client's view: answer when something does, or at the deadline.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, toNumber(cmd.maxAwaitTimeMS));
        const off = state.topology.onChange(done);
        const offClose = ctx.conn.onClose(done);
        function done(): void {
          clearTimeout(timer);
          off();
          offClose();
          resolve();
        }
      });
    }
  } else if (cmd.maxAwaitTimeMS !== undefined && tv === undefined) {
    throw badValue("A request with a 'maxAwaitTimeMS' must also include a 'topologyVersion'");
  }
  return helloReply(ctx, legacy);
}

function buildInfo(): Doc {
  return {
    version: SERVER_VERSION,
    gitVersion: 'changeq-test-mongod',
    modules: [],
    allocator: 'system',
    javascriptEngine: 'none',
    sysInfo: 'deprecated',
    versionArray: [7, 0, 0, 0].map((n) => new Int32(n)),
    bits: 64,
    debug: false,
    maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
    storageEngines: ['changeq'],
    ok: 1,
  };
}

function getParameter(ctx: CommandContext): Doc {
  const params: Doc = {
    featureCompatibilityVersion: { version: '7.0' },
    enableTestCommands: true,
    transactionLifetimeLimitSeconds: 60,
    maxTransactionLockRequestTimeoutMillis: 5,
    cursorTimeoutMillis: Long.fromNumber(600_000),
    authenticationMechanisms: ['SCRAM-SHA-256'],
    // The periodic no-op writer (a real server's interval is whole seconds; ours is in ms).
    writePeriodicNoops: ctx.state.noopIntervalMs > 0,
    periodicNoopIntervalSecs: ctx.state.noopIntervalMs / 1000,
  };
  const { cmd } = ctx;
  if (
    cmd.getParameter === '*' ||
    (isPlainObject(cmd.getParameter) && cmd.getParameter.allParameters)
  )
    return { ...params, ok: 1 };
  const out: Doc = {};
  for (const k of Object.keys(cmd)) {
    if (k === 'getParameter' || k.startsWith('$') || k === 'lsid' || k === 'comment') continue;
    if (!(k in params)) throw new MongoServerError(72, `no option found to get: ${k}`);
    out[k] = params[k];
  }
  if (Object.keys(out).length === 0) throw new MongoServerError(72, 'no option found to get');
  return { ...out, ok: 1 };
}

function serverStatus(ctx: CommandContext): Doc {
  const { state } = ctx;
  const uptimeMs = Date.now() - state.startedAt;
  return {
    host: os.hostname(),
    version: SERVER_VERSION,
    process: 'mongod',
    pid: Long.fromNumber(process.pid),
    uptime: uptimeMs / 1000,
    uptimeMillis: Long.fromNumber(uptimeMs),
    uptimeEstimate: Long.fromNumber(Math.floor(uptimeMs / 1000)),
    localTime: new Date(),
    connections: {
      current: state.connections.size,
      available: 1_000_000 - state.connections.size,
      totalCreated: state.totalConnections,
    },
    repl: {
      setName: state.replSetName,
      isWritablePrimary: state.topology.primary,
      secondary: !state.topology.primary,
      hosts: [`${state.host}:${state.port}`],
      me: `${state.host}:${state.port}`,
    },
    security: {
      authentication: {
        saslSupportedMechsReceived: Long.fromNumber(state.authStats.saslSupportedMechsReceived),
        mechanisms: {
          'SCRAM-SHA-256': {
            speculativeAuthenticate: {
              received: Long.fromNumber(state.authStats.speculative.received),
              successful: Long.fromNumber(state.authStats.speculative.successful),
            },
            authenticate: {
              received: Long.fromNumber(state.authStats.all.received),
              successful: Long.fromNumber(state.authStats.all.successful),
            },
          },
        },
      },
    },
    metrics: {
      cursor: { open: { total: Long.fromNumber(state.cursors.size) } },
      queryExecutor: {
        scanned: Long.fromNumber(state.queryExecutor.scanned),
        scannedObjects: Long.fromNumber(state.queryExecutor.scannedObjects),
      },
    },
    changeq: {
      historyEntries: state.engine.history.size,
      compacting: state.engine.compacting,
      collections: state.engine.catalog.all().length,
    },
    ok: 1,
  };
}

function replSetGetStatus(ctx: CommandContext): Doc {
  const { state } = ctx;
  const name = `${state.host}:${state.port}`;
  const ts = toTimestamp(state.engine.lastWriteTs());
  const opTime = { ts, t: Long.fromNumber(state.topology.term) };
  return {
    set: state.replSetName,
    date: new Date(),
    myState: state.topology.primary ? 1 : 2,
    term: Long.fromNumber(state.topology.term),
    optimes: { lastCommittedOpTime: opTime, appliedOpTime: opTime, durableOpTime: opTime },
    members: [
      {
        _id: 0,
        name,
        health: 1,
        state: state.topology.primary ? 1 : 2,
        stateStr: state.topology.primary ? 'PRIMARY' : 'SECONDARY',
        uptime: Math.floor((Date.now() - state.startedAt) / 1000),
        optime: opTime,
        self: true,
        electionId: state.topology.electionId,
      },
    ],
    ok: 1,
  };
}

async function replSetStepDown(ctx: CommandContext): Promise<Doc> {
  const { cmd, state } = ctx;
  const secs = toNumber(cmd.replSetStepDown ?? 60);
  const catchUp =
    cmd.secondaryCatchUpPeriodSecs === undefined ? 10 : toNumber(cmd.secondaryCatchUpPeriodSecs);
  if (!Number.isFinite(secs) || secs <= 0)
    throw badValue('stepdown period must be a positive integer');
  if (catchUp > secs) {
    throw badValue('stepdown period must be longer than secondaryCatchUpPeriodSecs');
  }
  if (!state.topology.primary) throw new MongoServerError(10107, "not primary so can't step down");
  if (cmd.force !== true) {
    // One member: no secondary can ever catch up, as on a real single-node replica set.
    await new Promise((r) => setTimeout(r, catchUp * 1000));
    throw new MongoServerError(
      262,
      `No electable secondaries caught up as of ${new Date().toISOString()}. Please use the replSetStepDown command with the argument {force: true} to force node to step down.`,
    );
  }
  state.log(`replSetStepDown: stepping down for ${secs}s`);
  state.topology.stepDown(secs, state.log);
  return { ok: 1 };
}

const ok = (): Doc => ({ ok: 1 });

export const handshakeCommands: Record<string, CommandSpec> = {
  hello: { handler: hello, inTxn: true },
  isMaster: { handler: hello, inTxn: true },
  ismaster: { handler: hello, inTxn: true },
  ping: { handler: ok, inTxn: true },
  buildInfo: { handler: buildInfo, inTxn: true },
  buildinfo: { handler: buildInfo, inTxn: true },
  getParameter: { handler: getParameter, adminOnly: true },
  serverStatus: { handler: serverStatus },
  hostInfo: {
    handler: () => ({
      system: {
        currentTime: new Date(),
        hostname: os.hostname(),
        cpuAddrSize: 64,
        memSizeMB: Long.fromNumber(Math.floor(os.totalmem() / 1048576)),
        numCores: os.cpus().length,
        cpuArch: os.arch(),
      },
      os: { type: os.type(), name: os.platform(), version: os.release() },
      extra: {},
      ok: 1,
    }),
  },
  getCmdLineOpts: {
    handler: (ctx) => ({
      argv: ctx.state.argv,
      parsed: {
        net: { bindIp: ctx.state.host, port: ctx.state.port },
        replication: { replSet: ctx.state.replSetName },
      },
      ok: 1,
    }),
    adminOnly: true,
  },
  getLog: {
    handler: (ctx) => {
      if (ctx.cmd.getLog === '*') return { names: ['global', 'startupWarnings'], ok: 1 };
      return { totalLinesWritten: 0, log: [], ok: 1 };
    },
    adminOnly: true,
  },
  whatsmyuri: { handler: (ctx) => ({ you: ctx.conn.remote, ok: 1 }) },
  replSetGetStatus: { handler: replSetGetStatus, adminOnly: true },
  replSetInitiate: {
    handler: () => {
      throw new MongoServerError(23, 'already initialized', { codeName: 'AlreadyInitialized' });
    },
    adminOnly: true,
  },
  replSetGetConfig: {
    handler: (ctx) => ({
      config: {
        _id: ctx.state.replSetName,
        version: 1,
        term: Long.fromNumber(ctx.state.topology.term),
        members: [
          {
            _id: 0,
            host: `${ctx.state.host}:${ctx.state.port}`,
            arbiterOnly: false,
            hidden: false,
            priority: 1,
            votes: 1,
          },
        ],
        settings: {},
      },
      ok: 1,
    }),
    adminOnly: true,
  },
  replSetStepDown: { handler: replSetStepDown, adminOnly: true },
  configureFailPoint: {
    handler: (ctx) => ({ ...ctx.state.failPoints.configure(ctx.cmd), ok: 1 }),
    adminOnly: true,
  },
  setFeatureCompatibilityVersion: { handler: ok, adminOnly: true },
  getFreeMonitoringStatus: { handler: () => ({ state: 'disabled', ok: 1 }), adminOnly: true },
  startSession: {
    handler: () => ({
      id: { id: new Binary(crypto.getRandomValues(new Uint8Array(16)), 4) },
      timeoutMinutes: 30,
      ok: 1,
    }),
  },
};
