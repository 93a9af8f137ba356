import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChangeStreamDocument } from 'mongodb';
import { describe, expect, test } from 'vitest';
import { CallLog, checkDeliveries, expectedJobs, tempDir, type HandlerCall } from '../src/index.js';

/** A change event as the server reports it (only the fields the check reads). */
function change(position: string, op: string, coll: string, id?: number): ChangeStreamDocument {
  return {
    _id: { _data: position },
    operationType: op,
    ns: { db: 'd', coll },
    ...(id === undefined ? {} : { documentKey: { _id: id } }),
  } as unknown as ChangeStreamDocument;
}

// Documents 1 and 2 go to worker a, document 3 to b; the drop of c goes to both.
const truth = [
  change('01', 'insert', 'c', 1),
  change('02', 'insert', 'c', 2),
  change('03', 'update', 'c', 1),
  change('04', 'insert', 'c', 3),
  change('05', 'drop', 'c'),
  change('06', 'insert', 'c', 1),
];
const expected = expectedJobs(truth, (event) => {
  const id = (event as { documentKey?: { _id: number } }).documentKey?._id;
  const job = `j${(event._id as { _data: string })._data}`;
  if (id === undefined)
    return [
      { worker: 'a', jobId: job },
      { worker: 'b', jobId: job },
    ];
  return [{ worker: id === 3 ? 'b' : 'a', jobId: job }];
});

let clock = 0;
/** A start and a successful end of the job at `position` on worker `w`. */
function run(position: string, w = 'a', pid = 1): HandlerCall[] {
  return [start(position, w, pid), end(position, w, pid)];
}
function start(position: string, w = 'a', pid = 1): HandlerCall {
  return { ph: 's', w, pid, job: `j${position}`, pos: position, doc: '', a: 1, t: (clock += 1) };
}
function end(position: string, w = 'a', pid = 1, r: HandlerCall['r'] = 'ok'): HandlerCall {
  return { ph: 'e', w, pid, job: `j${position}`, pos: position, doc: '', a: 1, t: (clock += 1), r };
}
const inOrder = [
  ...run('01'),
  ...run('02'),
  ...run('03'),
  ...run('04', 'b'),
  ...run('05'),
  ...run('05', 'b'),
  ...run('06'),
];

describe('checkDeliveries', () => {
  test('every job handled in order, one re-run after a crash: clean', () => {
    // The process running 03 dies after its success was recorded; the next one runs it again.
    const calls = [...inOrder.slice(0, 6), ...run('03', 'a', 2), ...inOrder.slice(6)];
    const report = checkDeliveries(expected, calls);
    expect(report.expected).toBe(7);
    expect(report.handled).toBe(7);
    expect(report.lost).toEqual([]);
    expect(report.reruns).toBe(1);
    expect(report.orderViolations).toEqual([]);
    expect(report.unexpected).toEqual([]);
  });

  test('a job never handled is lost, and not an order violation of the later ones', () => {
    const calls = inOrder.filter((call) => call.pos !== '03');
    const report = checkDeliveries(expected, calls);
    expect(report.lost.map((job) => job.position)).toEqual(['03']);
    expect(report.orderViolations).toEqual([]);
  });

  test("a document's event that starts before an earlier one is handled overtook it", () => {
    const calls = [...run('01'), ...run('02'), start('03'), end('03', 'a', 1, 'fail')];
    calls.push(...run('04', 'b'), ...run('05', 'b'));
    calls.push(start('06')); // 03 is not handled yet (and 05 neither, on a)
    calls.push(end('06'), ...run('03'), ...run('05'));
    const kinds = checkDeliveries(expected, calls).orderViolations.map((v) => v.kind);
    expect(kinds).toContain('overtook an earlier event');
    expect(kinds).toContain('overtook a barrier');
    expect(kinds).toContain('ran after a later event');
  });

  test('a success recorded after a later event of the document started (a stale process)', () => {
    const calls = [...run('01'), ...run('02'), start('03', 'a', 1)];
    calls.push(...run('03', 'a', 2), ...run('04', 'b'), ...run('05', 'a', 2), ...run('05', 'b'));
    calls.push(start('06', 'a', 2), end('03', 'a', 1), end('06', 'a', 2));
    const report = checkDeliveries(expected, calls);
    expect(report.orderViolations).toMatchObject([
      { kind: 'ran after a later event', position: '03', pid: 1 },
    ]);
    expect(report.reruns).toBe(1);
  });

  test('an aborted call after a later one started is no violation (its handler did nothing)', () => {
    const calls = [...run('01'), ...run('02'), start('03', 'a', 1)];
    calls.push(...run('03', 'a', 2), ...run('04', 'b'), ...run('05', 'a', 2), ...run('05', 'b'));
    calls.push(start('06', 'a', 2), end('03', 'a', 1, 'aborted'), end('06', 'a', 2));
    const report = checkDeliveries(expected, calls);
    expect(report.orderViolations).toEqual([]);
    expect(report.abortedCalls).toBe(1);
  });

  test('a namespace-wide event runs after every earlier job of its worker', () => {
    const calls = [...run('01'), ...run('02'), ...run('04', 'b'), ...run('05'), ...run('03')];
    calls.push(...run('05', 'b'), ...run('06'));
    const report = checkDeliveries(expected, calls);
    expect(report.orderViolations).toMatchObject([
      { kind: 'barrier overtook an earlier event', subject: 'd.c', worker: 'a' },
    ]);
  });

  test('a job handled by the wrong worker, or not called for, is unexpected', () => {
    const calls = [...inOrder, ...run('04', 'a'), ...run('99', 'b')];
    const report = checkDeliveries(expected, calls);
    expect(report.unexpected.map((call) => `${call.w}/${call.pos}`)).toEqual(['a/04', 'b/99']);
  });
});

describe('CallLog', () => {
  test('reads the lines completed since its last read, across a partial line', () => {
    const file = join(tempDir(), 'calls.jsonl');
    const [one, two] = run('01').map((call) => JSON.stringify(call));
    const log = new CallLog(file);
    expect(log.read()).toEqual([]); // no file yet
    writeFileSync(file, `${one}\n${two!.slice(0, 10)}`);
    expect(log.read().map((call) => call.ph)).toEqual(['s']);
    appendFileSync(file, `${two!.slice(10)}\n`);
    expect(log.read().map((call) => call.ph)).toEqual(['e']);
    expect(log.calls).toHaveLength(2);
  });
});

describe('checkDeliveries across a ring change', () => {
  // Document 1 moves from worker a to worker b after position 02.
  const moving = [change('01', 'insert', 'c', 1), change('02', 'update', 'c', 1), change('03', 'update', 'c', 1)];
  const routed = expectedJobs(moving, (event) => {
    const position = (event._id as { _data: string })._data;
    return [{ worker: position <= '02' ? 'a' : 'b', jobId: `j${position}` }];
  });

  test('a moved document handled on its new owner after its old owner: clean', () => {
    const report = checkDeliveries(routed, [...run('01'), ...run('02'), ...run('03', 'b')]);
    expect(report.orderViolations).toEqual([]);
    expect(report.lost).toEqual([]);
  });

  test('its new owner running before the old owner finished: a violation', () => {
    const report = checkDeliveries(routed, [
      ...run('01'),
      start('02'),
      ...run('03', 'b'),
      end('02'),
    ]);
    expect(report.orderViolations.map((v) => [v.kind, v.worker, v.position])).toEqual([
      ['overtook an earlier event', 'b', '03'],
      ['ran after a later event', 'a', '02'],
    ]);
  });
});
