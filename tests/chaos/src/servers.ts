/**
 * The matrix's own servers: Debian's redis-server with AOF `appendfsync always` (what the
 * zero-loss rows assume; docs/reliability.md says what the other settings change) and the
 * project's MongoDB-compatible server with a data folder, both restartable in place. Never a
 * server from the environment: the rows kill and restart them.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { MongoClient, type Timestamp } from 'mongodb';
import { startMongo, startRedis, type RunningMongo, type RunningRedis } from '@changeq/stack';

export class Servers {
  private constructor(
    readonly redis: RunningRedis,
    readonly mongo: RunningMongo,
    /** The harness's own clients: fail points, step-downs, drops, the cluster time. */
    readonly admin: MongoClient,
    readonly redisClient: Redis,
  ) {}

  static async start(): Promise<Servers> {
    const [redis, mongo] = await Promise.all([
      startRedis({ appendfsync: 'always' }),
      startMongo({}),
    ]);
    const admin = new MongoClient(mongo.uri, { serverSelectionTimeoutMS: 60_000 });
    await admin.connect();
    const redisClient = new Redis(redis.url, { maxRetriesPerRequest: null });
    redisClient.on('error', () => undefined); // the rows break Redis on purpose
    const servers = new Servers(redis, mongo, admin, redisClient);
    // START_AT has one-second resolution and the server's history begins when it starts: make
    // sure every second a row can start from lies inside that history.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await admin.db('chaos_warmup').collection('x').insertOne({ at: new Date() });
    return servers;
  }

  get mongodbUri(): string {
    return this.mongo.uri;
  }

  get redisUrl(): string {
    return this.redis.url;
  }

  /** The cluster time of the last write the server has applied (changes up to it exist). */
  async clusterTime(): Promise<Timestamp> {
    const reply = await this.admin.db('admin').command({ hello: 1 });
    return (reply.operationTime ?? reply.$clusterTime.clusterTime) as Timestamp;
  }

  /** `configureFailPoint`; resolves the number of times the fail point fired before. */
  async failPoint(name: string, mode: unknown, data?: Record<string, unknown>): Promise<number> {
    const reply = await this.admin
      .db('admin')
      .command({ configureFailPoint: name, mode, ...(data ? { data } : {}) });
    return (reply as { count: number }).count;
  }

  /**
   * Arms fail point `name` to fire once (`data` says on what), and waits until it has fired:
   * true when it did within `timeoutMs`. Re-arming is how its count is read (the server has no
   * other way to tell), so on rare occasions it fires a second time; it is off afterwards.
   */
  async failOnce(
    name: string,
    data: Record<string, unknown>,
    timeoutMs = 20_000,
  ): Promise<boolean> {
    const before = await this.failPoint(name, 'off');
    const deadline = Date.now() + timeoutMs;
    let fired = false;
    while (!fired && Date.now() < deadline) {
      fired = (await this.failPoint(name, { times: 1 }, data)) > before;
      if (!fired) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await this.failPoint(name, 'off');
    return fired;
  }

  /** Waits until the server accepts writes again (after a restart or a step-down). */
  async waitWritable(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const reply = await this.admin.db('admin').command({ hello: 1 });
        if (reply.isWritablePrimary === true) return;
      } catch {
        // restarting
      }
      if (Date.now() > deadline) throw new Error('the MongoDB server did not accept writes again');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Removes Redis' persistence files: the next start is empty (call while it is down). */
  wipeRedisData(): void {
    for (const entry of readdirSync(this.redis.dataDir)) {
      if (entry === 'redis.log') continue;
      rmSync(join(this.redis.dataDir, entry), { recursive: true, force: true });
    }
  }

  async stop(): Promise<void> {
    this.redisClient.disconnect();
    await this.admin.close().catch(() => undefined);
    await Promise.all([this.redis.stop(), this.mongo.stop()]);
  }
}
