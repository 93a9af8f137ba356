/**
 * The ingest hands BullMQ each job's data as JSON text it encoded in its reader thread
 * (EncodedJob). Held here against BullMQ itself on a real Redis: the stored job must be what a
 * plain Job with the parsed data stores, and a BullMQ Worker must read the same data back. If a
 * BullMQ upgrade stopped serialising through Job#asJSON, these fail.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Binary, Decimal128, Long, ObjectId } from 'mongodb';
import { encodeEvent, decodeEvent, type EventJobData } from '@changeq/shared';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { EncodedJob } from '../src/encoded-job.js';

describe('EncodedJob', () => {
  let redis: RunningRedis;
  let connection: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  });

  afterAll(async () => {
    connection?.disconnect();
    await redis?.stop();
  });

  const event = {
    _id: { _data: '8263A1B2C3000000012B022C0100296E5A1004' },
    operationType: 'insert',
    ns: { db: 'shop', coll: 'orders' },
    documentKey: { _id: new ObjectId('64b7f0c2a1b2c3d4e5f60718') },
    fullDocument: {
      _id: new ObjectId('64b7f0c2a1b2c3d4e5f60718'),
      total: Decimal128.fromString('12.50'),
      count: Long.fromString('9007199254740993'),
      blob: new Binary(Buffer.from('änd "quotes" \\ and\nnewlines'), 0),
      at: new Date('2026-11-22T05:00:00.000Z'),
    },
  };

  test('stores exactly what a plain Job with the parsed data stores', async () => {
    const data = encodeEvent(event, { ns: 'shop.orders', op: 'insert', doc: 'd1' });
    const json = JSON.stringify(data);
    const opts = { removeOnComplete: 100, removeOnFail: 1000, jobId: 'j1' };
    // The same job id in two queues of one prefix, added in one transaction.
    const plainQueue = new Queue('plain', { connection, prefix: 'encoded' });
    const encodedQueue = new Queue('encoded', { connection, prefix: 'encoded' });
    const tx = (await plainQueue.getBackend().client).multi();
    await new Job(plainQueue, 'insert shop.orders', JSON.parse(json), opts, 'j1').addJob(tx);
    await new EncodedJob(encodedQueue, 'insert shop.orders', json, opts, 'j1').addJob(tx);
    const results = await tx.exec();
    expect(results?.map(([error]) => error)).toEqual([null, null]);

    const [plain, encoded] = await Promise.all([
      connection.hgetall('encoded:plain:j1'),
      connection.hgetall('encoded:encoded:j1'),
    ]);
    expect(encoded.data).toBe(json);
    const { timestamp: t1, ...plainRest } = plain;
    const { timestamp: t2, ...encodedRest } = encoded;
    expect(Number(t1)).toBeGreaterThan(0);
    expect(Number(t2)).toBeGreaterThan(0);
    expect(encodedRest).toEqual(plainRest);
    expect(Object.keys(encodedRest)).toEqual(expect.arrayContaining(['data', 'name', 'opts']));
    expect(await connection.lrange('encoded:encoded:wait', 0, -1)).toEqual(['j1']);
    await Promise.all([plainQueue.close(), encodedQueue.close()]);
  });

  test("a BullMQ Worker receives the data object, and the worker's decoder restores the event", async () => {
    const data = encodeEvent(event, { ns: 'shop.orders', op: 'insert', doc: 'd1' });
    const queue = new Queue('roundtrip', { connection, prefix: 'encoded' });
    const client = await queue.getBackend().client;
    const tx = client.multi();
    await new EncodedJob(
      queue,
      'insert shop.orders',
      JSON.stringify(data),
      { jobId: 'j1' },
      'j1',
    ).addJob(tx);
    await tx.exec();
    const received = await new Promise<EventJobData>((resolve, reject) => {
      const worker = new Worker<EventJobData>(
        'roundtrip',
        async (job) => {
          resolve(job.data);
        },
        { connection: connection.duplicate(), prefix: 'encoded' },
      );
      worker.on('error', reject);
      worker.on('completed', () => void worker.close());
    });
    expect(received).toEqual(JSON.parse(JSON.stringify(data)));
    expect(decodeEvent(received)).toEqual(event);
    await queue.close();
  });
});
