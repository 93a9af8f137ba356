/** The planner under routing keys ([routing] in workers.toml) and the settings checked at start. */
import { ObjectId, Timestamp, type ChangeStreamDocument } from 'mongodb';
import { describe, expect, test } from 'vitest';
import {
  RingRouter,
  Router,
  documentIdentity,
  identityOf,
  lineKey,
  parseRoutingRule,
  type RoutingRule,
  type SnapshotEvent,
  UserError,
} from '@changeq/shared';
import { eventJobId } from '@changeq/store/keys';
import { planEvent } from '../src/planner.js';
import { checkRoutingSettings } from '../src/routing-settings.js';

const names = ['alpha', 'bravo', 'charlie'];
const router = new Router(names);
const byCustomer = new Map<string, RoutingRule>([
  ['shop.orders', parseRoutingRule('fullDocument.customerId')],
]);
const customerLine = (value: unknown) =>
  lineKey('shop.orders', parseRoutingRule('fullDocument.customerId'), value);

function event(op: string, id: number, data: string, images: object = {}): ChangeStreamDocument {
  return {
    _id: { _data: data },
    operationType: op,
    ns: { db: 'shop', coll: 'orders' },
    documentKey: { _id: id },
    ...images,
  } as unknown as ChangeStreamDocument;
}

/** Two customers whose lines belong to different workers (so a key change crosses workers). */
function twoCustomersOnTwoWorkers(): [string, string] {
  for (let n = 1; ; n++) {
    const a = `c-${n}`;
    const b = `c-${n + 1}`;
    if (router.routeKey(customerLine(a)) !== router.routeKey(customerLine(b))) return [a, b];
  }
}

describe('planEvent with routing keys', () => {
  test('without [routing], and for namespaces it does not name, jobs are byte for byte as before', () => {
    const id = new ObjectId('64b7f0c2a1b2c3d4e5f60718');
    const e = {
      _id: { _data: '8265A1B2C3000000072B' },
      operationType: 'update',
      ns: { db: 'shop', coll: 'items' },
      documentKey: { _id: id },
      fullDocument: { _id: id, customerId: 'c-1' },
    } as unknown as ChangeStreamDocument;
    // Frozen from the planner before routing keys existed.
    const before =
      '{"queue":"charlie","name":"update shop.items","jobId":"6f451560e14b70e0693cbcb57437c071","position":"8265A1B2C3000000072B","json":"{\\"v\\":1,\\"ns\\":\\"shop.items\\",\\"op\\":\\"update\\",\\"doc\\":\\"66b066c2a36d3dd796d2e549e5b6730d\\",\\"event\\":{\\"_id\\":{\\"_data\\":\\"8265A1B2C3000000072B\\"},\\"operationType\\":\\"update\\",\\"ns\\":{\\"db\\":\\"shop\\",\\"coll\\":\\"items\\"},\\"documentKey\\":{\\"_id\\":{\\"$oid\\":\\"64b7f0c2a1b2c3d4e5f60718\\"}},\\"fullDocument\\":{\\"_id\\":{\\"$oid\\":\\"64b7f0c2a1b2c3d4e5f60718\\"},\\"customerId\\":\\"c-1\\"}}}"}';
    const plan = (rules?: Map<string, RoutingRule>) => {
      const [job] = planEvent(e, router, undefined, rules);
      return JSON.stringify({
        queue: job!.queue,
        name: job!.name,
        jobId: job!.jobId,
        position: job!.position,
        json: job!.json,
      });
    };
    expect(plan()).toBe(before);
    expect(plan(byCustomer)).toBe(before);
  });

  test("every order of one customer is on the customer's line and worker, whatever the document", () => {
    const line = customerLine('c-7');
    const jobs = [
      planEvent(
        event('insert', 1, '82AA01', { fullDocument: { _id: 1, customerId: 'c-7' } }),
        router,
        undefined,
        byCustomer,
      ),
      planEvent(
        event('insert', 2, '82AA02', { fullDocument: { _id: 2, customerId: 'c-7' } }),
        router,
        undefined,
        byCustomer,
      ),
      planEvent(
        event('update', 2, '82AA03', {
          fullDocument: { _id: 2, customerId: 'c-7', total: 3 },
          fullDocumentBeforeChange: { _id: 2, customerId: 'c-7' },
        }),
        router,
        undefined,
        byCustomer,
      ),
      planEvent(
        event('delete', 1, '82AA04', { fullDocumentBeforeChange: { _id: 1, customerId: 'c-7' } }),
        router,
        undefined,
        byCustomer,
      ),
    ];
    for (const planned of jobs) {
      expect(planned).toHaveLength(1);
      expect(planned[0]!.queue).toBe(router.routeKey(line));
      const data = JSON.parse(planned[0]!.json) as Record<string, unknown>;
      expect(data.doc).toBe(identityOf(line));
      expect(data).not.toHaveProperty('after');
    }
  });

  test('a key change: a handoff marker on the old key’s worker first, the event held after it', () => {
    const [from, to] = twoCustomersOnTwoWorkers();
    const planned = planEvent(
      event('update', 5, '82BB01', {
        fullDocument: { _id: 5, customerId: to },
        fullDocumentBeforeChange: { _id: 5, customerId: from },
      }),
      router,
      undefined,
      byCustomer,
    );
    const oldOwner = router.routeKey(customerLine(from));
    const handoff = `key-${eventJobId('82BB01')}`;
    expect(planned.map((job) => [job.queue, job.name, job.jobId, job.position])).toEqual([
      [oldOwner, 'handoff', `handoff-${handoff}`, '82BB01'],
      [router.routeKey(customerLine(to)), 'update shop.orders', eventJobId('82BB01'), '82BB01'],
    ]);
    expect(JSON.parse(planned[0]!.json)).toEqual({
      kind: 'handoff',
      epoch: handoff,
      line: identityOf(customerLine(from)),
    });
    expect(JSON.parse(planned[1]!.json)).toMatchObject({
      doc: identityOf(customerLine(to)),
      after: [{ epoch: handoff, workers: [oldOwner] }],
    });
  });

  test('a key change at a ring change also waits for the old key’s ring hold', () => {
    const ring = new RingRouter([
      { epoch: 1, names: ['alpha', 'bravo'], from: '' },
      { epoch: 2, names: names, from: '82CC00' },
    ]);
    // an old key that moved to charlie at epoch 2: its earlier events are still on alpha/bravo
    let from = '';
    for (let n = 1; from === ''; n++) {
      if (ring.route(customerLine(`m-${n}`), '82CC01').hold) from = `m-${n}`;
    }
    const planned = planEvent(
      event('replace', 9, '82CC01', {
        fullDocument: { _id: 9, customerId: 'someone-else' },
        fullDocumentBeforeChange: { _id: 9, customerId: from },
      }),
      ring,
      undefined,
      byCustomer,
    );
    const data = JSON.parse(planned[planned.length - 1]!.json) as { after: unknown[] };
    expect(data.after).toEqual([
      { epoch: `key-${eventJobId('82CC01')}`, workers: ['charlie'] },
      ring.route(customerLine(from), '82CC01').hold,
    ]);
  });

  test('an event without the image its key needs stops the ingest with the setting to fix', () => {
    expect(() => planEvent(event('delete', 1, '82DD01'), router, undefined, byCustomer)).toThrow(
      /delete event in shop\.orders cannot be routed by fullDocument\.customerId: it has no fullDocumentBeforeChange.*changeStreamPreAndPostImages/,
    );
  });

  test('"namespace": every document on one line; "documentKey.<field>": by the shard key', () => {
    const rules = new Map<string, RoutingRule>([['shop.orders', parseRoutingRule('namespace')]]);
    const docs = [1, 2, 3].map(
      (id) =>
        JSON.parse(
          planEvent(
            event('insert', id, `82EE0${id}`, { fullDocument: { _id: id } }),
            router,
            undefined,
            rules,
          )[0]!.json,
        ).doc as string,
    );
    expect(new Set(docs).size).toBe(1);
    const sharded = new Map<string, RoutingRule>([
      ['shop.orders', parseRoutingRule('documentKey.region')],
    ]);
    const e = {
      ...event('delete', 4, '82EE04'),
      documentKey: { _id: 4, region: 'eu' },
    } as unknown as ChangeStreamDocument;
    expect(JSON.parse(planEvent(e, router, undefined, sharded)[0]!.json).doc).toBe(
      identityOf(lineKey('shop.orders', parseRoutingRule('documentKey.region'), 'eu')),
    );
  });

  test('snapshot documents of one customer keep distinct job ids (the id names the document)', () => {
    const snap = (id: number): SnapshotEvent => ({
      _id: { snapshot: `run:0:${id}` },
      operationType: 'snapshot',
      ns: { db: 'shop', coll: 'orders' },
      documentKey: { _id: id },
      fullDocument: { _id: id, customerId: 'c-1' },
      clusterTime: new Timestamp({ t: 1, i: 0 }),
    });
    const [a] = planEvent(
      snap(1),
      router,
      { kind: 'snapshot', runId: 'r', position: 'p1' },
      byCustomer,
    );
    const [b] = planEvent(
      snap(2),
      router,
      { kind: 'snapshot', runId: 'r', position: 'p2' },
      byCustomer,
    );
    expect(a!.jobId).toBe(eventJobId(`snapshot\0r\0${documentIdentity('shop.orders', 1)}`));
    expect(a!.jobId).not.toBe(b!.jobId);
    expect(JSON.parse(a!.json).doc).toBe(JSON.parse(b!.json).doc);
  });
});

describe('checkRoutingSettings', () => {
  const ok = {
    fullDocument: 'updateLookup',
    fullDocumentBeforeChange: 'required',
    pipeline: null,
    file: 'w.toml',
  } as const;

  test('accepts a field it can read on every operation', () => {
    expect(() => checkRoutingSettings(byCustomer, ok)).not.toThrow();
    const other = new Map<string, RoutingRule>([
      ['a.b', parseRoutingRule('documentKey.region')],
      ['a.c', parseRoutingRule('namespace')],
    ]);
    expect(() =>
      checkRoutingSettings(other, {
        ...ok,
        fullDocument: 'default',
        fullDocumentBeforeChange: 'off',
      }),
    ).not.toThrow();
  });

  test.each([
    [{ fullDocument: 'default' }, /cannot be read on updates.*FULL_DOCUMENT=updateLookup/],
    [
      { fullDocumentBeforeChange: 'off' },
      /cannot be read on deletes.*FULL_DOCUMENT_BEFORE_CHANGE=required/,
    ],
    [
      { pipeline: [{ $unset: 'fullDocument.customerId' }] },
      /PIPELINE stage 1 removes fullDocument\.customerId, which \[routing\]/,
    ],
    [
      { pipeline: [{ $match: {} }, { $project: { fullDocument: 0 } }] },
      /PIPELINE stage 2 removes fullDocument,/,
    ],
    [
      { pipeline: [{ $set: { 'fullDocument.customerId': 'x' } }] },
      /overwrites fullDocument\.customerId/,
    ],
    [{ pipeline: [{ $unset: 'fullDocumentBeforeChange' }] }, /removes fullDocumentBeforeChange,/],
    [
      {
        pipeline: [
          {
            $project: {
              _id: 1,
              ns: 1,
              documentKey: 1,
              operationType: 1,
              clusterTime: 1,
              'fullDocument.total': 1,
            },
          },
        ],
      },
      /removes fullDocument\.customerId \(an inclusion/,
    ],
  ])('refuses %j', (change, message) => {
    let error: UserError | undefined;
    try {
      checkRoutingSettings(byCustomer, { ...ok, ...change } as typeof ok);
    } catch (e) {
      error = e as UserError;
    }
    expect(error).toBeInstanceOf(UserError);
    expect(`${error?.message}. Fix: ${error?.fix}`).toMatch(message);
  });

  test('lets through a pipeline that leaves the field alone', () => {
    const pipeline = [{ $unset: 'fullDocument.ssn' }, { $project: { 'fullDocument.notes': 0 } }];
    expect(() => checkRoutingSettings(byCustomer, { ...ok, pipeline })).not.toThrow();
  });
});
