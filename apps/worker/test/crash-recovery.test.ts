/**
 * SIGKILL of the active worker process at random moments, again and again, with a replacement
 * started each time (sometimes before the kill, as a standby waiting for the lease): nothing is
 * lost, and per document the handler calls never go backwards in oplog order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { enqueue } from './helpers/events.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { endProcesses, isAlive, waitFor, workersFile, type TestProcess } from '@changeq/testkit';
import { RECORDING_HANDLERS, startWorkerProcess } from './helpers/process.js';
import { buildScenario, callsOf, missing, orderViolation, seeded } from './helpers/scenario.js';

const DOCS = 100;
const PER_DOC = 30;
const KILLS = 6;

describe('crash recovery', () => {
  let server: RunningRedis;
  let redis: Redis;
  const processes: TestProcess[] = [];
  const scenario = buildScenario(DOCS, PER_DOC, seeded(2024));
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    server = await startRedis({ appendfsync: 'always' });
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
    const workersToml = workersFile(`workers = ["alpha"]
[defaults]
concurrency = 8
attempts = 4
backoff_ms = 20
max_backoff_ms = 100
timeout_ms = 5000
`);
    await enqueue(redis, scenario.events, () => 'alpha');
    env = {
      REDIS_URL: server.url,
      WORKERS_FILE: workersToml,
      LOG_LEVEL: 'info',
      REC_REDIS_URL: server.url,
      REC_SEED: '11',
      REC_FAIL_RATE: '0.3',
      REC_SLEEP_MAX_MS: '20',
    };
  });

  afterAll(async () => {
    await endProcesses(processes.splice(0));
    await redis?.quit();
    await server?.stop();
  });

  const start = () => {
    const p = startWorkerProcess(
      ['--name', 'alpha', '--handlers', RECORDING_HANDLERS, '--lease-ttl-ms', '1000'],
      env,
    );
    processes.push(p);
    return p;
  };

  it('loses nothing and never runs a document backwards across repeated SIGKILLs', async () => {
    const random = seeded(99);
    const queue = new Queue('alpha', { connection: redis, prefix: 'changeq' });
    let active = start();
    let killsWithWorkLeft = 0;
    let standbyLines = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      await active.waitForLine(/"msg":"active: this process holds the lease/);
      // Spread the kills over the run: kill i once a share (i+1)/(KILLS+2) of the events is
      // done, after a random delay, so that each one lands in the middle of the work.
      const goal = Math.floor(((kill + 1) / (KILLS + 2)) * scenario.events.length);
      await waitFor(
        async () => (await queue.getCompletedCount()) >= goal,
        () => active.output().slice(-2000),
        60_000,
      );
      await sleep(Math.floor(random() * 250));
      const counts = await queue.getJobCounts('wait', 'active');
      if ((counts.wait ?? 0) + (counts.active ?? 0) > 0) killsWithWorkLeft++;
      let next: TestProcess;
      if (kill % 2 === 0) {
        // The replacement is already running: it must wait as a standby, then take over.
        next = start();
        await next.waitForLine(/"msg":"standby: worker \\"alpha\\" is active in another process/);
        standbyLines++;
        process.kill(active.pid, 'SIGKILL');
      } else {
        process.kill(active.pid, 'SIGKILL');
        next = start();
      }
      await active.exited;
      expect(isAlive(active.pid)).toBe(false);
      active = next;
    }
    await queue.close();
    expect(killsWithWorkLeft).toBeGreaterThanOrEqual(5);
    expect(standbyLines).toBe(KILLS / 2);

    const report = async () => {
      const lines: string[] = [];
      for (const doc of scenario.byDoc.keys()) {
        const gap = missing(await callsOf(redis, doc), PER_DOC);
        if (gap.length > 0) lines.push(`${doc}: missing ${gap.join(',')}`);
      }
      return lines.slice(0, 10).join('; ');
    };
    await waitFor(async () => (await report()) === '', report, 90_000);

    let recoveredRuns = 0;
    for (const doc of scenario.byDoc.keys()) {
      const calls = await callsOf(redis, doc);
      expect(orderViolation(calls), `${doc}: ${JSON.stringify(calls)}`).toBeUndefined();
      if (new Set(calls.map((c) => c.pid)).size > 1) recoveredRuns++;
    }
    // The kills really interrupted documents midway (their events ran in several processes).
    expect(recoveredRuns).toBeGreaterThan(10);
    // Every process that was killed while active recovered its predecessor's jobs in order.
    const recoveries = processes
      .map((p) => p.output())
      .filter((text) => /recovered \d+ job\(s\) left active/.test(text)).length;
    expect(recoveries).toBeGreaterThanOrEqual(5);
  }, 120_000); // 15 s alone; its waits allow more on a machine busy with other test files
});
