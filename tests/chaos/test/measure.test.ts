import { Timestamp, type ChangeStreamDocument } from 'mongodb';
import { describe, expect, test } from 'vitest';
import { expectedJobs, type HandlerCall } from '@changeq/testkit';
import { measure, pendingResult, type RowRun } from '../src/measure.js';
import { parseOptions } from '../src/options.js';
import { renderMarkdown, renderTable, type MatrixReport } from '../src/report.js';
import { QUICK } from '../src/settings.js';

const at = (second: number) => new Timestamp({ t: second, i: 1 });

/** Three changes of one document at cluster seconds 10, 11 and 12; worker a runs them. */
const truth = [10, 11, 12].map(
  (second) =>
    ({
      _id: { _data: `P${second}` },
      operationType: second === 10 ? 'insert' : 'update',
      ns: { db: 'd', coll: 'c' },
      documentKey: { _id: 1 },
      clusterTime: at(second),
    }) as unknown as ChangeStreamDocument,
);
const expected = expectedJobs(truth, (event) => [
  { worker: 'a', jobId: `j-${(event._id as { _data: string })._data}` },
]);

/** A successful call of the change at `second`, handled at `t` (ms). */
function handled(second: number, t: number): HandlerCall[] {
  const call = { w: 'a', pid: 1, job: `j-P${second}`, pos: `P${second}`, doc: '', a: 1 };
  return [
    { ...call, ph: 's', t },
    { ...call, ph: 'e', t, r: 'ok' },
  ];
}

function run(overrides: Partial<RowRun> = {}): RowRun {
  return {
    id: 'row',
    title: 'a row',
    expect: 'clean',
    truth,
    expected,
    calls: [...handled(10, 1000), ...handled(11, 1500), ...handled(12, 2500)],
    enqueues: {
      adds: expected.map((job) => ({ worker: 'a', jobId: job.jobId, at: 900 })),
      refusedAsDuplicates: 0,
      incomplete: [],
      reset: [],
    },
    // The fault ended at 1200 ms, when the server's cluster time was second 11.
    windows: [{ label: 'f', start: 1100, end: 1200, endCluster: at(11) }],
    writes: { operations: 3, failures: 0, lastError: null },
    ownExits: [],
    resetAt: null,
    failures: [],
    notes: [],
    durationMs: 5000,
    ...overrides,
  };
}

describe('measure', () => {
  test('every change handled once, in order: the row passes; recovery runs to the last change written before the fault ended', () => {
    const result = measure(run());
    expect(result).toMatchObject({
      status: 'pass',
      written: 3,
      enqueued: 3,
      handled: 3,
      lost: 0,
      duplicates: 0,
      orderViolations: 0,
      recoverMs: 300, // the change at second 11 was handled at 1500 ms
    });
  });

  test('an event added twice to its queue is a duplicate job, a handler re-run is not', () => {
    const base = run();
    const result = measure(
      run({
        calls: [...base.calls, ...handled(12, 2600)],
        enqueues: {
          ...base.enqueues,
          adds: [...base.enqueues.adds, { worker: 'a', jobId: 'j-P11', at: 1300 }],
        },
      }),
    );
    expect(result).toMatchObject({ status: 'fail', duplicates: 1, reruns: 1 });
    expect(result.reasons).toEqual(['1 events enqueued twice']);
  });

  test('a fault that strikes before the one before it recovered leaves that one out of the figure', () => {
    const result = measure(
      run({
        windows: [
          { label: 'first', start: 1100, end: 1200, endCluster: at(11) },
          { label: 'second', start: 1300, end: 1400, endCluster: at(12) },
        ],
      }),
    );
    expect(result.faultWindows).toEqual([
      { label: 'first', durationMs: 100, recoverMs: 300, overlapped: true },
      { label: 'second', durationMs: 100, recoverMs: 1100, overlapped: false },
    ]);
    expect(result.recoverMs).toBe(1100);
  });

  test('a change never handled is lost, and the row has not recovered', () => {
    const result = measure(run({ calls: [...handled(10, 1000), ...handled(12, 2500)] }));
    expect(result).toMatchObject({ status: 'fail', lost: 1, recoverMs: null });
  });

  test('an incomplete enqueue record, a fault that never struck or a process that quit fail the row', () => {
    const result = measure(
      run({
        enqueues: { ...run().enqueues, incomplete: ['a'] },
        failures: ['the fail point never fired'],
        ownExits: [
          {
            role: 'ingest',
            exit: { pid: 7, code: 1, signal: null, at: 0, tail: '{"msg":"boom"}\n' },
          },
        ],
      }),
    );
    expect(result.status).toBe('fail');
    expect(result.reasons).toEqual([
      'the fail point never fired',
      'the enqueue record of a is incomplete (its stream was trimmed before it was read): duplicates cannot be ruled out',
      'ingest (pid 7) exited by itself with code 1: boom',
    ]);
  });

  describe('the row expecting a stop (Redis lost its data)', () => {
    const stopRun = (overrides: Partial<RowRun>) =>
      run({ expect: 'stop', resetAt: 2000, ...overrides });
    const stopped = {
      role: 'ingest',
      exit: {
        pid: 7,
        code: 2,
        signal: null,
        at: 2100,
        tail: '{"msg":"Redis lost the position. Fix: changeq resync, or changeq token set --at"}\n',
      },
    };

    test('an ingest that goes on after Redis came back empty: fail', () => {
      const result = measure(
        stopRun({
          enqueues: {
            ...run().enqueues,
            adds: [...run().enqueues.adds, { worker: 'a', jobId: 'j-P10', at: 2050 }],
          },
        }),
      );
      expect(result.status).toBe('fail');
      expect(result.reasons.join(' ')).toMatch(/went on after Redis came back empty/);
      expect(result.stop).toMatchObject({ stopped: false, addedAfterReset: 1 });
    });

    test('an ingest that stops, naming the ways on, with nothing added after: pass', () => {
      const result = measure(stopRun({ ownExits: [stopped] }));
      expect(result.status).toBe('pass');
      expect(result.recoverMs).toBeNull();
    });

    test('an ingest that stops after enqueuing again, or without naming the ways on: fail', () => {
      const result = measure(
        stopRun({
          ownExits: [{ ...stopped, exit: { ...stopped.exit, tail: '{"msg":"bye"}\n' } }],
          enqueues: {
            ...run().enqueues,
            adds: [...run().enqueues.adds, { worker: 'a', jobId: 'j-P10', at: 2050 }],
          },
        }),
      );
      expect(result.status).toBe('fail');
      expect(result.reasons).toEqual([
        'the ingest stopped without naming the ways on (changeq resync, token set --at): "bye"',
        '1 jobs were added after Redis came back empty',
        '1 events were enqueued twice',
      ]);
    });
  });
});

describe('options and report', () => {
  test('options: flags, lists and one clear error', () => {
    expect(parseOptions(['--quick', '--json', '--only', 'a,b', '--seed', '7'])).toMatchObject({
      quick: true,
      json: true,
      only: ['a', 'b'],
      seed: 7,
    });
    expect(() => parseOptions(['--seed', 'x'])).toThrow('--seed x is not a whole number');
    expect(() => parseOptions(['--fast'])).toThrow('unknown option --fast');
  });

  test('the table has a line per row and says what failed', () => {
    const failing = measure(run({ calls: handled(10, 1000) }));
    const report: MatrixReport = {
      version: 1,
      at: '2026-01-01T00:00:00.000Z',
      command: 'npm run chaos -- --quick',
      mode: 'quick',
      seed: 1,
      machine: {
        cpus: 2,
        cpuModel: 'cpu',
        memoryGiB: 4,
        node: 'v20',
        redis: '7.0',
        platform: 'linux',
      },
      settings: { ...QUICK, leaseTtlMs: 3000, workers: ['a'], redisAppendfsync: 'always' },
      passed: false,
      durationMs: 1000,
      rows: [measure(run()), failing],
    };
    const table = renderTable(report);
    expect(table).toMatch(/^row +result +faults/m);
    expect(table).toMatch(/^row +pass +1 +3 +3 +3 +0 +0 +0 +0 +0\.3 s$/m);
    expect(table).toContain('FAIL 2 changes never handled');
    expect(table).toContain('SOME ROWS FAILED');
    const markdown = renderMarkdown({
      ...report,
      rows: [...report.rows, pendingResult('later', 'a row to come', 'lands later')],
    });
    expect(markdown).toContain('| `row` | a row | pass | 1 | 3 | 3 | 3 | 0 | 0 | 0 | 0 | 0.3 s |');
    expect(markdown).toContain('| `row` | a row | **fail** | 1 | 3 | 3 | 1 | 2 |');
    expect(markdown).toContain('| `later` | a row to come | pending (lands later) |');
  });
});
