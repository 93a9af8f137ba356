/** One planner for change events and snapshot documents. */
import { ObjectId, Timestamp, type ChangeStreamDocument } from 'mongodb';
import { describe, expect, test } from 'vitest';
import { RingRouter, Router, documentIdentity, type SnapshotEvent } from '@changeq/shared';
import { eventJobId } from '@changeq/store/keys';
import { planEvent } from '../src/planner.js';

const router = new Router(['alpha', 'bravo', 'charlie']);
const id = new ObjectId('64b7f0c2a1b2c3d4e5f60718');

describe('planEvent', () => {
  test('a change event: one job on its document’s worker, named and ordered by its token', () => {
    const event = {
      _id: { _data: '8265A1B2C3000000072B' },
      operationType: 'update',
      ns: { db: 'shop', coll: 'orders' },
      documentKey: { _id: id },
    } as unknown as ChangeStreamDocument;
    const [job, ...rest] = planEvent(event, router);
    expect(rest).toEqual([]);
    expect(job).toMatchObject({
      queue: router.route('shop.orders', id),
      name: 'update shop.orders',
      jobId: eventJobId('8265A1B2C3000000072B'),
      position: '8265A1B2C3000000072B',
    });
    expect(JSON.parse(job!.json)).toMatchObject({ doc: documentIdentity('shop.orders', id) });
  });

  test('a transaction’s mark rides on every job of the event; other events carry none', () => {
    const mark = { id: '{"lsid":{},"txnNumber":{"$numberInt":"1"}}', index: 2, count: 5 };
    const update = {
      _id: { _data: '8265A1B2C3000000072B' },
      operationType: 'update',
      ns: { db: 'shop', coll: 'orders' },
      documentKey: { _id: id },
    } as unknown as ChangeStreamDocument;
    const drop = {
      _id: { _data: '8265A1B2C3000000082B' },
      operationType: 'drop',
      ns: { db: 'shop', coll: 'orders' },
    } as unknown as ChangeStreamDocument;
    const jobs = [
      ...planEvent(update, router, undefined, undefined, mark),
      ...planEvent(drop, router, undefined, undefined, mark),
    ];
    expect(jobs).toHaveLength(4);
    for (const job of jobs) expect(JSON.parse(job.json)).toMatchObject({ txn: mark });
    expect(JSON.parse(planEvent(update, router)[0]!.json)).not.toHaveProperty('txn');
  });

  test('a document event without documentKey._id (a PIPELINE stage removed it) is refused, never sent to every worker', () => {
    const event = {
      _id: { _data: '8265A1B2C3000000072B' },
      operationType: 'insert',
      ns: { db: 'shop', coll: 'orders' },
      fullDocument: { total: 5 },
    } as unknown as ChangeStreamDocument;
    expect(() => planEvent(event, router)).toThrow(
      /insert in shop\.orders\) has no documentKey\._id.*PIPELINE/,
    );
  });

  test('a snapshot document: the same route and identity, its job id from the run and the document', () => {
    const event: SnapshotEvent = {
      _id: { snapshot: 'run1:3:0' },
      operationType: 'snapshot',
      ns: { db: 'shop', coll: 'orders' },
      documentKey: { _id: id },
      fullDocument: { _id: id, total: 5 },
      clusterTime: new Timestamp({ t: 1_700_000_000, i: 0 }),
    };
    const identity = documentIdentity('shop.orders', id);
    const [job] = planEvent(event, router, { kind: 'snapshot', runId: 'run1', position: 'p' });
    expect(job).toMatchObject({
      queue: router.route('shop.orders', id),
      name: 'snapshot shop.orders',
      jobId: eventJobId(`snapshot\0run1\0${identity}`),
      position: 'p',
    });
    expect(JSON.parse(job!.json)).toMatchObject({ op: 'snapshot', doc: identity });
  });

  test('a namespace-wide event goes to every worker; a pre-4.2 token is refused', () => {
    const drop = {
      _id: { _data: '8265A1B2C3000000082B' },
      operationType: 'drop',
      ns: { db: 'shop', coll: 'orders' },
    } as unknown as ChangeStreamDocument;
    expect(planEvent(drop, router).map((job) => job.queue)).toEqual(['alpha', 'bravo', 'charlie']);
    expect(() => planEvent({ ...drop, _id: { legacy: 1 } } as never, router)).toThrow(/4\.2/);
  });

  test("by a ring: the epoch of the event's position; a moved document's job holds on its old owner", () => {
    const from = '8265A1B2C3000000072B';
    const ring = new RingRouter([
      { epoch: 1, names: ['alpha', 'bravo'], from: '' },
      { epoch: 2, names: ['alpha', 'bravo', 'charlie'], from },
    ]);
    const three = new Router(['alpha', 'bravo', 'charlie']);
    const two = new Router(['alpha', 'bravo']);
    // A document that moves to charlie at epoch 2.
    let n = 0;
    while (three.route('shop.orders', n) !== 'charlie') n++;
    const change = (data: string, op = 'update') =>
      ({
        _id: { _data: data },
        operationType: op,
        ns: { db: 'shop', coll: 'orders' },
        documentKey: { _id: n },
      }) as unknown as ChangeStreamDocument;
    const [before] = planEvent(change(from), ring);
    expect(before!.queue).toBe(two.route('shop.orders', n));
    expect(JSON.parse(before!.json).hold).toBeUndefined();
    const [after] = planEvent(change(`${from}01`), ring);
    expect(after!.queue).toBe('charlie');
    expect(JSON.parse(after!.json).hold).toEqual({
      epoch: 2,
      workers: [two.route('shop.orders', n)],
    });
    // A drop after the switch: on every name; charlie's waits for the names it gained from.
    const drop = planEvent(
      {
        _id: { _data: `${from}02` },
        operationType: 'drop',
        ns: { db: 'shop', coll: 'orders' },
      } as never,
      ring,
    );
    expect(drop.map((job) => [job.queue, JSON.parse(job.json).hold ?? null])).toEqual([
      ['alpha', null],
      ['bravo', null],
      ['charlie', { epoch: 2, workers: ['alpha', 'bravo'] }],
    ]);
  });
});
