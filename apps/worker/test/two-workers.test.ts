/**
 * Two worker names in two real processes at concurrency 8, 3,000 events over 100 documents
 * enqueued through BullMQ with the shared codec and Router; the handler fails 30% of first
 * attempts (seeded) and sleeps at random; one event of two chosen documents per worker always
 * fails. alpha uses dead_letter = "block", bravo "skip".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { discardDeadLetter, listDeadLetters, retryDeadLetter } from '@changeq/store';
import { enqueue, routerFor } from './helpers/events.js';
import { waitFor, endProcesses, workersFile, type TestProcess } from '@changeq/testkit';
import { RECORDING_HANDLERS, startWorkerProcess } from './helpers/process.js';
import { buildScenario, callsOf, missing, orderViolation, seeded } from './helpers/scenario.js';

const NAMES = ['alpha', 'bravo'];
const DOCS = 100;
const PER_DOC = 30;
const FAIL_AT = 5;

describe('two workers, random failures, dead letters', () => {
  let server: RunningRedis;
  let redis: Redis;
  const processes: TestProcess[] = [];
  const scenario = buildScenario(DOCS, PER_DOC, seeded(42));
  const route = routerFor(NAMES);
  const workerOf = new Map<string, string>();
  for (const [doc, events] of scenario.byDoc) workerOf.set(doc, route(events[0]!));
  const docsOf = (worker: string) => [...workerOf].filter(([, w]) => w === worker).map(([d]) => d);
  // Two documents per worker whose event #5 always fails.
  const failing = new Map(NAMES.map((name) => [name, docsOf(name).slice(0, 2)]));
  const allFailing = [...failing.values()].flat();

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
    const workersToml = workersFile(`workers = ["alpha", "bravo"]
[defaults]
concurrency = 8
attempts = 3
backoff_ms = 20
max_backoff_ms = 200
timeout_ms = 5000
[worker.bravo]
dead_letter = "skip"
`);
    await enqueue(redis, scenario.events, route);
    const env = {
      REDIS_URL: server.url,
      WORKERS_FILE: workersToml,
      LOG_LEVEL: 'warn',
      REC_REDIS_URL: server.url,
      REC_SEED: '7',
      REC_FAIL_RATE: '0.3',
      REC_SLEEP_MAX_MS: '6',
      REC_FAIL_EVENTS: allFailing.map((doc) => `${doc}:${FAIL_AT}`).join(','),
    };
    for (const name of NAMES) {
      processes.push(startWorkerProcess(['--name', name, '--handlers', RECORDING_HANDLERS], env));
    }
  });

  afterAll(async () => {
    await endProcesses(processes.splice(0));
    await redis?.quit();
    await server?.stop();
  });

  it('handles every event once its turn comes, in per-document order', async () => {
    const expectedMissing = (doc: string) =>
      failing.get('alpha')!.includes(doc)
        ? Array.from({ length: PER_DOC - FAIL_AT + 1 }, (_, i) => FAIL_AT + i)
        : failing.get('bravo')!.includes(doc)
          ? [FAIL_AT]
          : [];
    const report = async () => {
      const lines: string[] = [];
      for (const doc of scenario.byDoc.keys()) {
        const gap = missing(await callsOf(redis, doc), PER_DOC);
        if (JSON.stringify(gap) !== JSON.stringify(expectedMissing(doc))) {
          lines.push(`${doc}: missing ${gap.join(',')}`);
        }
      }
      return lines.slice(0, 10).join('; ');
    };
    await waitFor(async () => (await report()) === '', report, 90_000);
    for (const doc of scenario.byDoc.keys()) {
      const calls = await callsOf(redis, doc);
      expect(orderViolation(calls), doc).toBeUndefined();
    }
    // The random failures really happened (about 30% of first attempts) and were retried.
    let retried = 0;
    for (const doc of scenario.byDoc.keys()) {
      retried += (await callsOf(redis, doc)).filter((c) => c.attempt === 2 && c.ok).length;
    }
    expect(retried).toBeGreaterThan(scenario.events.length * 0.2);
  });

  it('dead-letters only the events that failed every attempt, and parks (block) or goes on (skip)', async () => {
    const alpha = await listDeadLetters({ redis, worker: 'alpha' });
    const bravo = await listDeadLetters({ redis, worker: 'bravo' });
    const dead = (entries: typeof alpha) => entries.filter((e) => e.kind === 'dead');
    expect(dead(alpha).map((e) => e.info.attempts)).toEqual([3, 3]);
    expect(dead(bravo).map((e) => e.info.attempts)).toEqual([3, 3]);
    for (const [worker, entries] of [
      ['alpha', alpha],
      ['bravo', bravo],
    ] as const) {
      const deadDocs = dead(entries).map((e) => {
        const info = scenario.info.get(e.jobId)!;
        return `${info.doc}:${info.n}`;
      });
      expect(deadDocs.sort()).toEqual(
        failing
          .get(worker)!
          .map((d) => `${d}:${FAIL_AT}`)
          .sort(),
      );
      for (const entry of dead(entries)) {
        expect(entry.info.error?.message).toMatch(/planned failure/);
        expect(entry.info.originalQueue).toBe(worker);
        expect(entry.info.originalJobId).toBe(entry.jobId);
        expect(entry.info.failedAt).toBeTypeOf('string');
      }
    }
    // block: events 6..30 of each failing document are parked, in order, behind the dead letter.
    const parked = alpha.filter((e) => e.kind === 'parked');
    expect(parked).toHaveLength(2 * (PER_DOC - FAIL_AT));
    for (const doc of failing.get('alpha')!) {
      const ids = scenario.byDoc
        .get(doc)!
        .slice(FAIL_AT)
        .map((e) => e.id);
      const deadId = scenario.byDoc.get(doc)![FAIL_AT - 1]!.id;
      const mine = parked.filter((e) => ids.includes(e.jobId));
      expect(mine.map((e) => e.jobId)).toEqual(ids);
      for (const entry of mine) expect(entry.info.blockedBy).toBe(deadId);
      expect(alpha.find((e) => e.jobId === deadId)?.blocking).toBe(true);
    }
    // skip: nothing parked; the dead documents' later events ran (checked by the first test).
    expect(bravo.filter((e) => e.kind === 'parked')).toEqual([]);
  });

  it('block: after retryDeadLetter the dead event and the parked ones run in order', async () => {
    for (const doc of failing.get('alpha')!) await redis.set(`rec:heal:${doc}`, '1');
    const receipts = await retryDeadLetter({ redis, worker: 'alpha' }, { all: true });
    expect(receipts.map((r) => r.op)).toEqual(['retry', 'retry']);
    const blockedDocs = failing.get('alpha')!;
    await waitFor(
      async () => {
        for (const doc of blockedDocs) {
          if (missing(await callsOf(redis, doc), PER_DOC).length > 0) return false;
        }
        return (await listDeadLetters({ redis, worker: 'alpha' })).length === 0;
      },
      async () => JSON.stringify(await listDeadLetters({ redis, worker: 'alpha' })).slice(0, 500),
      30_000,
    );
    for (const doc of blockedDocs) {
      const calls = await callsOf(redis, doc);
      expect(orderViolation(calls), doc).toBeUndefined();
      const afterRetry = calls.slice(calls.findIndex((c) => c.n === FAIL_AT && c.ok));
      expect(afterRetry.filter((c) => c.ok).map((c) => c.n)).toEqual(
        Array.from({ length: PER_DOC - FAIL_AT + 1 }, (_, i) => FAIL_AT + i),
      );
    }
    expect(await redis.hlen('changeq:worker:alpha:blocked')).toBe(0);
    // bravo's (skip) dead letters stay until someone acts on them.
    expect((await listDeadLetters({ redis, worker: 'bravo' })).length).toBe(2);
  });

  it('skip: retry runs the dead event again (after its successors, as documented), discard drops it', async () => {
    const [first, second] = failing.get('bravo')!;
    await redis.set(`rec:heal:${first}`, '1');
    const dead = await listDeadLetters({ redis, worker: 'bravo' });
    const byDoc = (doc: string) => dead.find((e) => scenario.info.get(e.jobId)?.doc === doc)!.jobId;
    const before = (await callsOf(redis, first!)).length;
    await retryDeadLetter({ redis, worker: 'bravo' }, { jobId: byDoc(first!) });
    await discardDeadLetter({ redis, worker: 'bravo' }, { jobId: byDoc(second!) });
    await waitFor(
      async () => (await listDeadLetters({ redis, worker: 'bravo' })).length === 0,
      async () => JSON.stringify(await listDeadLetters({ redis, worker: 'bravo' })).slice(0, 300),
      20_000,
    );
    const after = (await callsOf(redis, first!)).slice(before);
    expect(after.filter((c) => c.ok).map((c) => c.n)).toEqual([FAIL_AT]);
    expect(missing(await callsOf(redis, second!), PER_DOC)).toEqual([FAIL_AT]);
  });
});
