// Handshake and diagnostics, following the "hello" command reference page and the driver
// specifications for server discovery (SDAM) and server monitoring.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MongoClient, MongoServerError } from 'mongodb';
import type { Document } from 'mongodb';
import { startTarget } from '../helpers/target.js';
import type { Target } from '../helpers/target.js';

let target: Target;
let client: MongoClient;

beforeAll(async () => {
  target = await startTarget();
  client = await target.client();
});
afterAll(async () => {
  await target.stop();
});

describe('hello (manual: hello command; SDAM spec)', () => {
  it('describes a writable replica-set primary', async () => {
    const hello = await client.db('admin').command({ hello: 1 });
    expect(hello.ok).toBe(1);
    expect(hello.isWritablePrimary).toBe(true);
    expect(hello.secondary).toBe(false);
    expect(typeof hello.setName).toBe('string');
    expect(hello.hosts).toContain(hello.me);
    expect(hello.primary).toBe(hello.me);
    expect(hello.maxWireVersion).toBeGreaterThanOrEqual(17);
    expect(hello.minWireVersion).toBe(0);
    expect(hello.maxBsonObjectSize).toBe(16 * 1024 * 1024);
    expect(hello.maxMessageSizeBytes).toBe(48_000_000);
    expect(hello.maxWriteBatchSize).toBe(100_000);
    expect(hello.logicalSessionTimeoutMinutes).toBe(30);
    expect(hello.localTime).toBeInstanceOf(Date);
    expect(hello.topologyVersion.processId).toBeDefined();
    expect(hello.electionId).toBeDefined();
    expect(typeof hello.connectionId).toBe('number');
    expect(hello.$clusterTime.clusterTime._bsontype).toBe('Timestamp');
    expect(hello.operationTime._bsontype).toBe('Timestamp');
    expect(hello.compression).toBeUndefined();
  });

  it('answers the legacy isMaster with ismaster: true', async () => {
    const r = await client.db('admin').command({ isMaster: 1 });
    expect(r.ismaster).toBe(true);
  });

  it('connects with directConnection=true and sees a replica-set member', async () => {
    const url = new URL(target.uri);
    const direct = new MongoClient(`mongodb://${url.host}/?directConnection=true`, {
      serverSelectionTimeoutMS: 5000,
    });
    try {
      await direct.connect();
      const r = await direct.db('admin').command({ ping: 1 });
      expect(r.ok).toBe(1);
      await direct.db('cq_direct').collection('c').insertOne({ a: 1 });
      await direct.db('cq_direct').dropDatabase();
    } finally {
      await direct.close();
    }
  });

  it('reports a MongoDB version and feature compatibility the driver supports', async () => {
    const info = await client.db('admin').command({ buildInfo: 1 });
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(Array.isArray(info.versionArray)).toBe(true);
    const p = await client.db('admin').command({ getParameter: 1, featureCompatibilityVersion: 1 });
    expect(p.featureCompatibilityVersion.version).toMatch(/^\d+\.\d+$/);
  });

  it('answers ping, serverStatus, connectionStatus, hostInfo and replSetGetStatus', async () => {
    const admin = client.db('admin');
    expect((await admin.command({ ping: 1 })).ok).toBe(1);
    const status = await admin.command({ serverStatus: 1 });
    expect(status.process).toMatch(/mongod/);
    expect(status.connections.current).toBeGreaterThan(0);
    expect((await admin.command({ connectionStatus: 1 })).authInfo).toBeDefined();
    expect((await admin.command({ hostInfo: 1 })).system).toBeDefined();
    const rs = await admin.command({ replSetGetStatus: 1 });
    expect(rs.myState).toBe(1);
    expect(rs.members[0].stateStr).toBe('PRIMARY');
  });

  it('gossips $clusterTime and operationTime on every reply', async () => {
    const events: Document[] = [];
    const c = await target.client({ monitorCommands: true });
    c.on('commandSucceeded', (e) => events.push(e.reply as Document));
    await c.db('cq_gossip').collection('c').find({}).toArray();
    expect(events.length).toBeGreaterThan(0);
    for (const reply of events) {
      expect(reply.$clusterTime).toBeDefined();
      expect(reply.operationTime).toBeDefined();
    }
  });
});

describe('unknown commands (manual: command reference; server error codes)', () => {
  it('answer CommandNotFound (59) and keep the connection usable', async () => {
    const err = await client
      .db('admin')
      .command({ noSuchCommandForSure: 1 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoServerError);
    expect((err as MongoServerError).code).toBe(59);
    expect((err as MongoServerError).codeName).toBe('CommandNotFound');
    expect((err as MongoServerError).message).toBe("no such command: 'noSuchCommandForSure'");
    expect((await client.db('admin').command({ ping: 1 })).ok).toBe(1);
  });
});

describe('sessions (driver Sessions spec)', () => {
  it('accepts lsid on commands and endSessions', async () => {
    const session = client.startSession();
    await client.db('cq_sessions').collection('c').insertOne({ a: 1 }, { session });
    expect(await client.db('cq_sessions').collection('c').countDocuments({}, { session })).toBe(1);
    await session.endSession();
    await client.db('cq_sessions').dropDatabase();
  });
});
