// Access control with SCRAM-SHA-256 (manual: "Enable Access Control", "SCRAM", "Localhost
// Exception", the user management commands; driver Authentication spec: SCRAM-SHA-256,
// speculative authentication, saslSupportedMechs; RFC 7677). Needs this server's auth option,
// so it is not in the conformance suite.
import { describe, expect, it } from 'vitest';
import { MongoClient, MongoServerError } from 'mongodb';
import type { Document } from 'mongodb';
import { startMongoServer } from '../../src/index.js';
import { startCli } from '../helpers/cli.js';
import { useTestResources } from '../helpers/resources.js';
import { take } from '../helpers/streams.js';

const { start, connect, tmpDir, server, cli } = useTestResources('cq-mongod-auth-');

/** A password with every character a URI must percent-encode. */
const HARD = 'p/a@s:s%w0rd';

function withCredentials(uri: string, user: string, password: string, query: string): string {
  const u = new URL(uri);
  return `mongodb://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${u.host}/${u.search}&${query}`;
}

async function serverError(p: Promise<unknown>): Promise<MongoServerError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MongoServerError);
  return err as MongoServerError;
}

async function authStats(c: MongoClient): Promise<Document> {
  const s = await c.db('admin').command({ serverStatus: 1 });
  return s.security.authentication.mechanisms['SCRAM-SHA-256'] as Document;
}

describe('SCRAM-SHA-256 with the real driver', () => {
  it('authenticates a startup user whose password holds / @ : % (percent-encoded in the URI)', async () => {
    const { s } = await start({ auth: { users: [{ user: 'app', password: HARD }] } });
    const uri = withCredentials(s.uri, 'app', HARD, 'authSource=admin&authMechanism=SCRAM-SHA-256');
    const c = await connect(uri);
    await c
      .db('t')
      .collection('c')
      .insertOne({ _id: 1 } as never);
    expect(await c.db('t').collection('c').countDocuments()).toBe(1);
    const status = await c.db('admin').command({ connectionStatus: 1 });
    expect(status.authInfo.authenticatedUsers).toEqual([{ user: 'app', db: 'admin' }]);
    expect(status.authInfo.authenticatedUserRoles).toEqual([{ role: 'root', db: 'admin' }]);
    // A change stream, as the ingest opens one.
    const cs = c.db('t').collection('c').watch();
    await cs.tryNext();
    await c
      .db('t')
      .collection('c')
      .insertOne({ _id: 2 } as never);
    expect((await take(cs, 1))[0]).toMatchObject({ operationType: 'insert' });
    await cs.close();
  });

  it('negotiates the mechanism through hello (saslSupportedMechs) and authenticates speculatively', async () => {
    const { s, c: plain } = await start({ auth: { users: [{ user: 'app', password: 'pw' }] } });
    const hello = await plain.db('admin').command({ hello: 1, saslSupportedMechs: 'admin.app' });
    expect(hello.saslSupportedMechs).toEqual(['SCRAM-SHA-256']);
    const none = await plain.db('admin').command({ hello: 1, saslSupportedMechs: 'admin.nobody' });
    expect(none.saslSupportedMechs).toBeUndefined();
    // No authMechanism: the driver's default, SCRAM-SHA-256 started inside the handshake hello.
    const c = await connect(withCredentials(s.uri, 'app', 'pw', 'authSource=admin'));
    await c.db('t').command({ ping: 1 });
    await c.db('t').collection('c').findOne({});
    const stats = await authStats(c);
    expect(Number(stats.speculativeAuthenticate.successful)).toBeGreaterThan(0);
    expect(Number(stats.authenticate.successful)).toBeGreaterThanOrEqual(
      Number(stats.speculativeAuthenticate.successful),
    );
  });

  it('refuses a wrong password or an unknown user with 18 AuthenticationFailed', async () => {
    const { s } = await start({ auth: { users: [{ user: 'app', password: HARD }] } });
    for (const [user, password] of [
      ['app', 'wrong'],
      ['app', HARD.slice(0, -1)],
      ['nobody', HARD],
    ] as const) {
      for (const mech of ['authMechanism=SCRAM-SHA-256', 'authMechanism=DEFAULT']) {
        const uri = withCredentials(s.uri, user, password, `authSource=admin&${mech}`);
        const c = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
        const err = await serverError(c.connect());
        await c.close();
        expect(err.code).toBe(18);
        expect(err.codeName).toBe('AuthenticationFailed');
        expect(err.message).toBe('Authentication failed.');
      }
    }
  });

  it('refuses SCRAM-SHA-1 (not enabled) with 334 MechanismUnavailable', async () => {
    const { s } = await start({ auth: { users: [{ user: 'app', password: 'pw' }] } });
    const uri = withCredentials(s.uri, 'app', 'pw', 'authSource=admin&authMechanism=SCRAM-SHA-1');
    const c = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
    const err = await serverError(c.connect());
    await c.close();
    expect(err.code).toBe(334);
  });
});

describe('access control (manual: Enable Access Control)', () => {
  it('answers the handshake unauthenticated and refuses everything else with 13 Unauthorized', async () => {
    const { c } = await start({ auth: { users: [{ user: 'app', password: 'pw' }] } });
    const admin = c.db('admin');
    expect((await admin.command({ ping: 1 })).ok).toBe(1);
    expect((await admin.command({ hello: 1 })).isWritablePrimary).toBe(true);
    expect((await admin.command({ connectionStatus: 1 })).authInfo.authenticatedUsers).toEqual([]);
    for (const run of [
      () => c.db('t').collection('c').findOne({}),
      () => c.db('t').collection('c').insertOne({ x: 1 }),
      () => c.db('t').collection('c').countDocuments(),
      () => admin.command({ listDatabases: 1 }),
      () => admin.command({ buildInfo: 1 }),
      () => c.db('t').createCollection('x'),
      () => admin.command({ createUser: 'other', pwd: 'x', roles: [] }),
    ]) {
      const err = await serverError(run());
      expect(err.code).toBe(13);
      expect(err.codeName).toBe('Unauthorized');
      expect(err.message).toMatch(/^Command \w+ requires authentication$/);
    }
  });

  it('lets a loopback client create the first user only (localhost exception)', async () => {
    const { s, c } = await start({ auth: {} });
    const admin = c.db('admin');
    await admin.command({ createUser: 'first', pwd: HARD, roles: ['root'] });
    const err = await serverError(admin.command({ createUser: 'second', pwd: 'x', roles: [] }));
    expect(err.code).toBe(13);
    const first = await connect(withCredentials(s.uri, 'first', HARD, 'authSource=admin'));
    await first.db('admin').command({ createUser: 'second', pwd: 'x', roles: [] });
  });

  it('does not require authentication without the auth option, but still checks passwords', async () => {
    const { s, c } = await start({});
    await c.db('t').collection('c').insertOne({ x: 1 });
    await c.db('admin').command({ createUser: 'u', pwd: 'pw', roles: [] });
    const ok = await connect(withCredentials(s.uri, 'u', 'pw', 'authSource=admin'));
    expect(await ok.db('t').collection('c').countDocuments()).toBe(1);
    const bad = new MongoClient(withCredentials(s.uri, 'u', 'nope', 'authSource=admin'));
    expect((await serverError(bad.connect())).code).toBe(18);
    await bad.close();
  });
});

describe('user management (manual: createUser, updateUser, dropUser, usersInfo)', () => {
  it('creates users in their database, changes passwords, drops users; they survive a restart', async () => {
    const dir = tmpDir();
    let s = await startMongoServer({
      dataDir: dir,
      auth: { users: [{ user: 'root', password: 'r' }] },
    });
    let root = await connect(withCredentials(s.uri, 'root', 'r', 'authSource=admin'));
    await root.db('shop').command({ createUser: 'clerk', pwd: HARD, roles: ['readWrite'] });
    const dup = await serverError(
      root.db('shop').command({ createUser: 'clerk', pwd: 'x', roles: [] }),
    );
    expect(dup.code).toBe(51003);
    const info = await root.db('shop').command({ usersInfo: 'clerk' });
    expect(info.users).toHaveLength(1);
    expect(info.users[0]).toMatchObject({
      _id: 'shop.clerk',
      user: 'clerk',
      db: 'shop',
      roles: [{ role: 'readWrite', db: 'shop' }],
      mechanisms: ['SCRAM-SHA-256'],
    });
    expect(info.users[0].credentials).toBeUndefined();
    // Users are stored as MongoDB stores them, without the password.
    const stored = await root
      .db('admin')
      .collection('system.users')
      .findOne({ _id: 'shop.clerk' as never });
    expect(JSON.stringify(stored)).not.toContain(HARD);
    expect(stored?.credentials['SCRAM-SHA-256'].iterationCount).toBe(15000);

    const clerk = await connect(withCredentials(s.uri, 'clerk', HARD, 'authSource=shop'));
    await clerk.db('shop').collection('orders').insertOne({ n: 1 });
    await root.db('shop').command({ updateUser: 'clerk', pwd: 'changed' });
    const stale = new MongoClient(withCredentials(s.uri, 'clerk', HARD, 'authSource=shop'));
    expect((await serverError(stale.connect())).code).toBe(18);
    await stale.close();
    await clerk.close();
    await root.close();
    await s.stop();

    s = server(
      await startMongoServer({ dataDir: dir, auth: { users: [{ user: 'root', password: 'r' }] } }),
    );
    root = await connect(withCredentials(s.uri, 'root', 'r', 'authSource=admin'));
    const again = await connect(withCredentials(s.uri, 'clerk', 'changed', 'authSource=shop'));
    expect(await again.db('shop').collection('orders').countDocuments()).toBe(1);
    await root.db('shop').command({ dropUser: 'clerk' });
    expect((await root.db('shop').command({ usersInfo: 1 })).users).toEqual([]);
    const gone = await serverError(root.db('shop').command({ dropUser: 'clerk' }));
    expect(gone.code).toBe(11);
  });
});

describe('CLI --auth --user', () => {
  it('takes users from --user and the environment, and never shows a password', async () => {
    const s = cli(
      await startCli(['--port', '0', '--auth', '--user', `app:${HARD}`], {
        ...process.env,
        CHANGEQ_TEST_MONGOD_USER: 'second:s3cr:et',
      }),
    );
    const c = await connect(withCredentials(s.uri, 'app', HARD, 'authSource=admin'));
    const opts = await c.db('admin').command({ getCmdLineOpts: 1 });
    expect(JSON.stringify(opts)).not.toContain(HARD);
    expect(opts.argv).toContain('app:<redacted>');
    const second = await connect(withCredentials(s.uri, 'second', 's3cr:et', 'authSource=admin'));
    await second.db('t').command({ ping: 1 });
    await second.db('t').collection('c').insertOne({ ok: 1 });
    expect(s.stderr()).not.toContain(HARD);
    expect(s.stderr()).not.toContain('s3cr:et');
    const anonymous = await connect(s.uri);
    expect((await serverError(anonymous.db('t').collection('c').findOne({}))).code).toBe(13);
  });
});
