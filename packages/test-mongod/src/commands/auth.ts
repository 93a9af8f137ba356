// Authentication (manual: "SCRAM", "Authentication" and the user management commands; the
// driver Authentication spec): saslStart/saslContinue with SCRAM-SHA-256, speculative
// authentication and saslSupportedMechs in hello, createUser/updateUser/dropUser/usersInfo,
// logout, connectionStatus, and the access-control gate (`--auth`): commands other than the
// handshake fail with 13 Unauthorized until the connection has authenticated.
import { Binary } from 'bson';
import { isNumeric, isPlainObject, toNumber, typeName } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { badValue, MongoServerError } from '../errors.js';
import { authenticationFailed, SCRAM_SHA_256, ScramServer } from '../auth/scram.js';
import {
  allUsers,
  findUser,
  newUserDoc,
  scramCredentialsOf,
  userCount,
  USERS_COLLECTION,
  USERS_DB,
} from '../auth/users.js';
import type { UserRole } from '../auth/users.js';
import { DirectView } from '../storage/view.js';
import type { ServerState } from '../state.js';
import type { CommandContext, CommandSpec, Connection } from './context.js';

/** Commands a connection may run before authenticating (requiresAuth() false in mongod). */
export const NO_AUTH_COMMANDS = new Set([
  'hello',
  'isMaster',
  'ismaster',
  'ping',
  'saslStart',
  'saslContinue',
  'logout',
  'connectionStatus',
  // Like mongod's test fail point command, which only exists when test commands are enabled.
  'configureFailPoint',
]);

function isLoopback(remote: string): boolean {
  return /^(127\.|::1:|::ffff:127\.)/.test(remote);
}

/**
 * Refuse a command on a connection that has not authenticated, when access control is on.
 * MongoDB's localhost exception lets a loopback client create the first user (in admin).
 */
export function checkAuthenticated(
  state: ServerState,
  conn: Connection,
  name: string,
  db: string,
): void {
  if (!state.authRequired || conn.auth.user || NO_AUTH_COMMANDS.has(name)) return;
  const localhostException =
    name === 'createUser' &&
    db === 'admin' &&
    isLoopback(conn.remote) &&
    userCount(state.engine) === 0;
  if (localhostException) return;
  throw new MongoServerError(13, `Command ${name} requires authentication`, {
    codeName: 'Unauthorized',
  });
}

function payloadText(v: unknown): string {
  if (v instanceof Binary) return Buffer.from(v.buffer.subarray(0, v.position)).toString('utf8');
  if (typeof v === 'string') return v;
  throw new MongoServerError(14, `BSON field 'payload' is the wrong type '${typeName(v)}'`);
}

const binary = (text: string): Binary => new Binary(Buffer.from(text, 'utf8'));

/** Start a SCRAM conversation on the connection: saslStart, or hello's speculativeAuthenticate. */
function startConversation(ctx: CommandContext, db: string, start: Doc, speculative: boolean): Doc {
  const stats = ctx.state.authStats;
  stats.all.received++;
  if (speculative) stats.speculative.received++;
  const mechanism = start.mechanism;
  if (mechanism !== SCRAM_SHA_256) {
    throw new MongoServerError(
      334,
      `Received authentication for mechanism ${String(mechanism)} which is not enabled`,
      { codeName: 'MechanismUnavailable' },
    );
  }
  const engine = ctx.state.engine;
  const server = new ScramServer((user) => scramCredentialsOf(findUser(engine, db, user)));
  const options = isPlainObject(start.options) ? start.options : {};
  ctx.conn.auth.sasl = undefined;
  let serverFirst: string;
  try {
    serverFirst = server.first(payloadText(start.payload));
  } catch (err) {
    ctx.state.log(`authentication failed: ${(err as Error).message} (user '${server.user}@${db}')`);
    throw err;
  }
  ctx.conn.auth.sasl = {
    id: 1,
    db,
    server,
    skipEmptyExchange: options.skipEmptyExchange === true,
    speculative,
  };
  return { conversationId: 1, done: false, payload: binary(serverFirst) };
}

function authenticated(
  ctx: CommandContext,
  db: string,
  server: ScramServer,
  speculative: boolean,
): void {
  const user = findUser(ctx.state.engine, db, server.user);
  if (!user) throw authenticationFailed();
  const stats = ctx.state.authStats;
  stats.all.successful++;
  if (speculative) stats.speculative.successful++;
  ctx.conn.auth.user = { user: server.user, db, roles: (user.roles as UserRole[]) ?? [] };
  ctx.conn.auth.sasl = undefined;
}

function saslStart(ctx: CommandContext): Doc {
  return { ...startConversation(ctx, ctx.db, ctx.cmd, false), ok: 1 };
}

function saslContinue(ctx: CommandContext): Doc {
  const sasl = ctx.conn.auth.sasl;
  const id = ctx.cmd.conversationId;
  if (!sasl || Number(id) !== sasl.id) {
    throw new MongoServerError(17, 'No SASL session state found', { codeName: 'ProtocolError' });
  }
  if (sasl.db !== ctx.db) {
    throw new MongoServerError(
      17,
      'Attempt to switch database target during SASL authentication.',
      {
        codeName: 'ProtocolError',
      },
    );
  }
  const text = payloadText(ctx.cmd.payload);
  if (sasl.server.verified) {
    // The client's empty last step, when it did not ask to skip it.
    if (text !== '')
      throw new MongoServerError(17, 'Unexpected SASL payload', { codeName: 'ProtocolError' });
    authenticated(ctx, sasl.db, sasl.server, sasl.speculative);
    return { conversationId: sasl.id, done: true, payload: binary(''), ok: 1 };
  }
  let serverFinal: string;
  try {
    serverFinal = sasl.server.final(text);
  } catch (err) {
    ctx.conn.auth.sasl = undefined;
    ctx.state.log(
      `authentication failed: ${(err as Error).message} (user '${sasl.server.user}@${sasl.db}')`,
    );
    throw err;
  }
  if (sasl.skipEmptyExchange) {
    authenticated(ctx, sasl.db, sasl.server, sasl.speculative);
    return { conversationId: sasl.id, done: true, payload: binary(serverFinal), ok: 1 };
  }
  return { conversationId: sasl.id, done: false, payload: binary(serverFinal), ok: 1 };
}

/**
 * hello's part of authentication: `saslSupportedMechs: "<db>.<user>"` lists the user's
 * mechanisms, and `speculativeAuthenticate` runs saslStart in the same round trip. A failed
 * speculative start is left out of the reply; the driver then authenticates the normal way and
 * gets the real error.
 */
export function helloAuthFields(ctx: CommandContext): Doc {
  const out: Doc = {};
  const mechs = ctx.cmd.saslSupportedMechs;
  if (typeof mechs === 'string') {
    ctx.state.authStats.saslSupportedMechsReceived++;
    const dot = mechs.indexOf('.');
    if (
      dot > 0 &&
      scramCredentialsOf(findUser(ctx.state.engine, mechs.slice(0, dot), mechs.slice(dot + 1)))
    ) {
      out.saslSupportedMechs = [SCRAM_SHA_256];
    }
  }
  const spec = ctx.cmd.speculativeAuthenticate;
  if (isPlainObject(spec) && spec.saslStart !== undefined) {
    const db = typeof spec.db === 'string' ? spec.db : ctx.db;
    try {
      out.speculativeAuthenticate = startConversation(ctx, db, spec, true);
    } catch {
      // reported by the saslStart that follows
    }
  }
  return out;
}

function logout(ctx: CommandContext): Doc {
  ctx.conn.auth.user = undefined;
  ctx.conn.auth.sasl = undefined;
  return { ok: 1 };
}

function connectionStatus(ctx: CommandContext): Doc {
  const u = ctx.conn.auth.user;
  return {
    authInfo: {
      authenticatedUsers: u ? [{ user: u.user, db: u.db }] : [],
      authenticatedUserRoles: u ? u.roles : [],
    },
    ok: 1,
  };
}

// ---- user management ----------------------------------------------------------------------

function userName(ctx: CommandContext): string {
  const name = ctx.cmd[ctx.name];
  if (typeof name !== 'string' || name === '') {
    throw badValue(`'${ctx.name}' must be a non-empty string naming the user`);
  }
  return name;
}

function parseRoles(ctx: CommandContext, required: boolean): UserRole[] | undefined {
  const roles = ctx.cmd.roles;
  if (roles === undefined) {
    if (required) throw badValue(`"${ctx.name}" command requires a "roles" array`);
    return undefined;
  }
  if (!Array.isArray(roles)) throw badValue(`"roles" must be an array`);
  return roles.map((r) => {
    if (typeof r === 'string') return { role: r, db: ctx.db };
    if (isPlainObject(r) && typeof r.role === 'string' && typeof r.db === 'string') {
      return { role: r.role, db: r.db };
    }
    throw badValue('each role must be a role name or {role: <name>, db: <db>}');
  });
}

function parsePassword(ctx: CommandContext, required: boolean): string | undefined {
  const pwd = ctx.cmd.pwd;
  if (pwd === undefined) {
    if (required) throw badValue("Must provide a 'pwd' field for all user documents");
    return undefined;
  }
  if (typeof pwd !== 'string' || pwd === '') throw badValue('Password must be a non-empty string');
  if (ctx.cmd.digestPassword === false) {
    throw badValue('Use of SCRAM-SHA-256 requires undigested passwords');
  }
  const mechanisms = ctx.cmd.mechanisms;
  if (
    mechanisms !== undefined &&
    (!Array.isArray(mechanisms) || mechanisms.some((m) => m !== SCRAM_SHA_256))
  ) {
    throw new MongoServerError(
      2,
      'only SCRAM-SHA-256 credentials are supported by changeq test-mongod',
      {
        extra: { unsupported: true },
      },
    );
  }
  return pwd;
}

function customData(ctx: CommandContext): Doc | undefined {
  const c = ctx.cmd.customData;
  if (c === undefined) return undefined;
  if (!isPlainObject(c)) throw badValue('"customData" must be an object');
  return c;
}

function createUser(ctx: CommandContext): Doc {
  const user = userName(ctx);
  const password = parsePassword(ctx, true) as string;
  const roles = parseRoles(ctx, true) as UserRole[];
  if (findUser(ctx.state.engine, ctx.db, user)) {
    throw new MongoServerError(51003, `User "${user}@${ctx.db}" already exists`);
  }
  const doc = newUserDoc(ctx.db, user, password, roles, customData(ctx));
  new DirectView(ctx.state.engine).insert(USERS_DB, USERS_COLLECTION, doc);
  return { ok: 1 };
}

function userNotFound(user: string, db: string): MongoServerError {
  return new MongoServerError(11, `Could not find user "${user}" for db "${db}"`, {
    codeName: 'UserNotFound',
  });
}

function updateUser(ctx: CommandContext): Doc {
  const user = userName(ctx);
  const existing = findUser(ctx.state.engine, ctx.db, user);
  if (!existing) throw userNotFound(user, ctx.db);
  const password = parsePassword(ctx, false);
  const roles = parseRoles(ctx, false);
  const data = customData(ctx);
  if (password === undefined && roles === undefined && data === undefined) {
    throw badValue('Must specify at least one field to update in updateUser');
  }
  const next: Doc = { ...existing };
  if (password !== undefined) {
    next.credentials = newUserDoc(ctx.db, user, password, []).credentials;
  }
  if (roles !== undefined) next.roles = roles;
  if (data !== undefined) next.customData = data;
  new DirectView(ctx.state.engine).update(USERS_DB, USERS_COLLECTION, existing, next, undefined);
  return { ok: 1 };
}

function dropUser(ctx: CommandContext): Doc {
  const user = userName(ctx);
  const existing = findUser(ctx.state.engine, ctx.db, user);
  if (!existing) throw userNotFound(user, ctx.db);
  new DirectView(ctx.state.engine).delete(USERS_DB, USERS_COLLECTION, existing);
  return { ok: 1 };
}

function describeUser(u: Doc, showCredentials: boolean): Doc {
  const out: Doc = { _id: u._id, userId: u.userId, user: u.user, db: u.db, roles: u.roles };
  if (u.customData) out.customData = u.customData;
  out.mechanisms = Object.keys((u.credentials as Doc | undefined) ?? {});
  if (showCredentials) out.credentials = u.credentials;
  return out;
}

function usersInfo(ctx: CommandContext): Doc {
  const q = ctx.cmd.usersInfo;
  const users = allUsers(ctx.state.engine);
  const wanted = (u: Doc): boolean => {
    const one = (w: unknown): boolean =>
      typeof w === 'string'
        ? u.user === w && u.db === ctx.db
        : isPlainObject(w) && u.user === w.user && u.db === w.db;
    if (isNumeric(q) && toNumber(q) === 1) return u.db === ctx.db;
    if (isPlainObject(q) && q.forAllDBs === true) return true;
    if (Array.isArray(q)) return q.some(one);
    return one(q);
  };
  const show = ctx.cmd.showCredentials === true;
  return { users: users.filter(wanted).map((u) => describeUser(u, show)), ok: 1 };
}

export const authCommands: Record<string, CommandSpec> = {
  saslStart: { handler: saslStart },
  saslContinue: { handler: saslContinue },
  logout: { handler: logout },
  connectionStatus: { handler: connectionStatus, inTxn: true },
  createUser: { handler: createUser, write: true },
  updateUser: { handler: updateUser, write: true },
  dropUser: { handler: dropUser, write: true },
  usersInfo: { handler: usersInfo },
};
