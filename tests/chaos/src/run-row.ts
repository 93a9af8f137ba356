/** Runs one row: its system, the writer, the fault, then waits for the pipeline and measures. */
import { Router, parseRoutingRule } from '@changeq/shared';
import { planEvent } from '@changeq/source';
import { HANDOFF_JOB_NAME, eventQueueName } from '@changeq/store';
import { expectedJobs, jobKey, seededRandom, type ExpectedJob } from '@changeq/testkit';
import type { Timestamp } from 'mongodb';
import { measure, type FaultWindow, type RowResult } from './measure.js';
import type { FaultContext, Route, Row } from './rows.js';
import type { Servers } from './servers.js';
import { COLLECTIONS, type Settings } from './settings.js';
import { System } from './system.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface RowOptions {
  servers: Servers;
  settings: Settings;
  runDir: string;
  index: number;
  seed: number;
  progress: (line: string) => void;
}

export async function runRow(row: Row, options: RowOptions): Promise<RowResult> {
  const { servers, settings } = options;
  const started = Date.now();
  const progress = (line: string) =>
    options.progress(`${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s ${line}`);
  const random = seededRandom(options.seed * 7919 + options.index);
  const from: Timestamp = await servers.clusterTime();
  const system = new System(servers, row, from, options.runDir, options.index);
  const windows: FaultWindow[] = [];
  const failures: string[] = [];
  const notes: string[] = [];
  let resetAt: number | null = null;
  try {
    await system.ready();
    progress('ready; writing');
    const writer = system.startWriter(settings, options.seed * 31 + options.index);
    await sleep(settings.warmupMs);
    const ctx: FaultContext = {
      servers,
      system,
      settings,
      random,
      async fault(label, run) {
        const start = Date.now();
        const value = await run();
        const end = Date.now();
        windows.push({ label, start, end, endCluster: await servers.clusterTime() });
        progress(`${label} (${end - start} ms)`);
        return value;
      },
      pause: (min, max) => sleep(min + random() * (max - min)),
      sleep,
      note: (text) => notes.push(text),
      fail: (reason) => failures.push(reason),
      markReset: () => (resetAt = Date.now()),
    };
    try {
      await row.inject(ctx);
    } catch (error) {
      failures.push(`injecting the fault failed: ${(error as Error).message}`);
    }
    await sleep(settings.tailMs);
    const writes = await writer.stop();
    const truth = await system.truth();
    const expected = expectedJobs(truth, await (row.route?.(system) ?? fixedRoute(system)));
    if (system.setup.routingKey !== undefined) newDocumentAfterDelete(expected);
    progress(`${truth.length} changes written; waiting for the pipeline`);
    if (row.expect === 'stop') await waitForStop(system, settings);
    else await waitForDrain(system, expected, settings);
    progress('measuring');
    await sleep(500); // a late duplicate would show now
    system.calls.read();
    const enqueues = await system.enqueues.close();
    return measure({
      id: row.id,
      title: row.title,
      expect: row.expect,
      truth,
      expected,
      calls: system.calls.calls,
      enqueues,
      windows,
      writes,
      ownExits: system.supervised.flatMap((process) =>
        process.ownExits.map((exit) => ({ role: process.name, exit })),
      ),
      resetAt,
      failures,
      notes,
      durationMs: Date.now() - started,
    });
  } finally {
    await system.stop();
  }
}

/**
 * Under a field routing key, a document deleted and inserted again is a new document: its
 * insert goes to its new key's line and is not held behind the delete (docs/configuration.md).
 * The order check then compares each life of a document on its own: `doc#0`, `doc#1`, ...
 */
function newDocumentAfterDelete(expected: ExpectedJob[]): void {
  const lives = new Map<string, number>();
  for (const job of expected) {
    if (job.doc === null) continue;
    const doc = job.doc;
    const life = lives.get(doc) ?? 0;
    job.doc = `${doc}#${life}`;
    if (job.event.operationType === 'delete') lives.set(doc, life + 1);
  }
}

/** The routing of the fixed worker names (what the product's planner does with them). */
async function fixedRoute(system: System): Promise<Route> {
  const router = new Router(system.names);
  // The handlers record the worker's name; the planner names its queue.
  const workerOf = new Map(system.names.map((name) => [eventQueueName(name), name]));
  const key = system.setup.routingKey;
  const rules =
    key === undefined
      ? undefined
      : new Map(COLLECTIONS.map((coll) => [`${system.db}.${coll}`, parseRoutingRule(key)]));
  return (event) =>
    planEvent(event, router, undefined, rules)
      // A routing key change's handoff marker is a job no handler sees.
      .filter((job) => job.name !== HANDOFF_JOB_NAME)
      .map((job) => ({ worker: workerOf.get(job.queue)!, jobId: job.jobId }));
}

/** Until every expected job was handled, or nothing moved for a while, or the timeout. */
async function waitForDrain(
  system: System,
  expected: readonly ExpectedJob[],
  settings: Settings,
): Promise<void> {
  const waiting = new Set(expected.map((job) => jobKey(job.worker, job.jobId)));
  const deadline = Date.now() + settings.drainTimeoutMs;
  let lastProgress = Date.now();
  const take = (calls: ReturnType<typeof system.calls.read>) => {
    for (const call of calls) {
      if (call.ph === 'e' && call.r === 'ok' && waiting.delete(jobKey(call.w, call.job)))
        lastProgress = Date.now();
    }
  };
  take(system.calls.calls);
  while (waiting.size > 0 && Date.now() < deadline && Date.now() - lastProgress < 20_000) {
    await sleep(250);
    take(system.calls.read());
  }
}

/** Until the ingest exited by itself (the expected stop), or the timeout. */
async function waitForStop(system: System, settings: Settings): Promise<void> {
  const deadline = Date.now() + settings.stopTimeoutMs;
  while (system.ingest.ownExits.length === 0 && Date.now() < deadline) await sleep(250);
  await sleep(1500); // anything enqueued right after would show now
}
