/** The pure parts of whole events: transactions marked in a batch, fragments joined. */
import { Long, UUID } from 'mongodb';
import { describe, expect, test } from 'vitest';
import { assembleFragments, markTransactions, transactionIdOf } from '../src/stream.js';

const lsid = (n: number) => ({ id: new UUID(`00000000-0000-4000-8000-00000000000${n}`) });
const inTxn = (session: number, txn: number) => ({ lsid: lsid(session), txnNumber: new Long(txn) });

describe('markTransactions', () => {
  test('events with one lsid and txnNumber are a transaction; other events carry nothing', () => {
    const events = [
      {},
      inTxn(1, 1),
      inTxn(1, 1),
      inTxn(1, 1),
      inTxn(1, 2),
      inTxn(2, 2),
      inTxn(2, 2),
      {},
    ];
    const marks = markTransactions(events);
    const a = transactionIdOf(inTxn(1, 1))!;
    const b = transactionIdOf(inTxn(1, 2))!;
    const c = transactionIdOf(inTxn(2, 2))!;
    expect(new Set([a, b, c]).size).toBe(3);
    expect(marks).toEqual([
      null,
      { id: a, index: 0, count: 3 },
      { id: a, index: 1, count: 3 },
      { id: a, index: 2, count: 3 },
      { id: b, index: 0, count: 1 },
      { id: c, index: 0, count: 2 },
      { id: c, index: 1, count: 2 },
      null,
    ]);
  });

  test('events of one transaction are counted together even if another’s came between them', () => {
    const a = transactionIdOf(inTxn(1, 1))!;
    const b = transactionIdOf(inTxn(2, 1))!;
    expect(markTransactions([inTxn(1, 1), inTxn(2, 1), inTxn(1, 1)])).toEqual([
      { id: a, index: 0, count: 2 },
      { id: b, index: 0, count: 1 },
      { id: a, index: 1, count: 2 },
    ]);
  });

  test('a retryable write (lsid without txnNumber in the event) is no transaction', () => {
    expect(transactionIdOf({ lsid: lsid(1) })).toBeNull();
    expect(markTransactions([{ lsid: lsid(1) }])).toEqual([null]);
  });
});

describe('assembleFragments', () => {
  test('joins the fields of fragments 1..of under the last fragment’s token', () => {
    const event = assembleFragments([
      {
        _id: { _data: 'A1' },
        splitEvent: { fragment: 1, of: 2 },
        operationType: 'update',
        ns: { db: 'd', coll: 'c' },
      },
      {
        _id: { _data: 'A2' },
        splitEvent: { fragment: 2, of: 2 },
        fullDocument: { _id: 1, big: 'x' },
      },
    ]);
    expect(event).toEqual({
      _id: { _data: 'A2' },
      operationType: 'update',
      ns: { db: 'd', coll: 'c' },
      fullDocument: { _id: 1, big: 'x' },
    });
  });

  test('refuses fragments out of order or of different events', () => {
    expect(() =>
      assembleFragments([
        { _id: { _data: 'A2' }, splitEvent: { fragment: 2, of: 2 } },
        { _id: { _data: 'A1' }, splitEvent: { fragment: 1, of: 2 } },
      ]),
    ).toThrow(/out of order \(fragment 1 of 2 was 2 of 2\)/);
    expect(() =>
      assembleFragments([{ _id: { _data: 'A1' }, splitEvent: { fragment: 1, of: 3 } }]),
    ).toThrow(/out of order/);
  });
});
