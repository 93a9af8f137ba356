/**
 * The rows of the fault matrix: one kind of fault each, injected while the writer streams
 * changes. A row is data plus an `inject` function; adding one is adding an entry here.
 */
import type { ChangeStreamDocument } from 'mongodb';
import { readPause, requestPause, type PauseTarget } from '@changeq/store';
import { waitFor } from '@changeq/testkit';
import type { Servers } from './servers.js';
import { LEASE_TTL_MS, type Settings } from './settings.js';
import type { System, SystemSetup } from './system.js';

/** What an `inject` function can do. */
export interface FaultContext {
  readonly servers: Servers;
  readonly system: System;
  readonly settings: Settings;
  readonly random: () => number;
  /**
   * Runs one fault, from the moment it strikes until it has ended (the process restarted, the
   * server back): recovery is timed from that end.
   */
  fault<T>(label: string, run: () => Promise<T>): Promise<T>;
  /** A random pause between repeated faults. */
  pause(minMs: number, maxMs: number): Promise<void>;
  sleep(ms: number): Promise<void>;
  /** An observation worth a line in the report. */
  note(text: string): void;
  /** The fault did not strike as planned: the row cannot pass, whatever the figures. */
  fail(reason: string): void;
  /** Redis came back without its data now (the row expecting the ingest to stop). */
  markReset(): void;
}

export interface Row extends Omit<SystemSetup, 'id'> {
  id: string;
  title: string;
  /**
   * `clean`: nothing lost, nothing enqueued twice, nothing out of order, and caught up after
   * the fault. `stop`: the ingest stops and says why; nothing is enqueued after the fault.
   */
  expect: 'clean' | 'stop';
  /** Set while the feature a row needs has not landed: listed, not run. */
  pending?: string;
  inject(ctx: FaultContext): Promise<void>;
  /**
   * Which worker(s) each change should have reached, read once the writes are over. Default: the
   * router of the fixed names. A row that changes the names while writing gives the routing of
   * the ring's epochs here (`System.ringRoute`).
   */
  route?(system: System): Promise<Route>;
}

/** The job(s) a change calls for: the worker that runs each, and the job id. */
export type Route = (event: ChangeStreamDocument) => readonly { worker: string; jobId: string }[];

/** The ingest's MongoDB connections (its appName), which the fail points aim at. */
const ingestAppName = (system: System) => `changeq-ingest-${system.ingestId}`;

/** The ingest that holds the ingest lease (other than the process `not`), once one does. */
async function leadingIngest(ctx: FaultContext, not?: number) {
  let leader: Awaited<ReturnType<System['ingestLeader']>>;
  await waitFor(
    async () => {
      leader = await ctx.system.ingestLeader();
      return leader !== undefined && leader.current.pid !== not;
    },
    'an ingest to hold the lease',
    30_000,
  );
  return leader!;
}

/** The process holding `name`'s lease, or the first one of the name. */
async function activeWorker(ctx: FaultContext, name: string) {
  const pid = await ctx.system.leaseHolder(name);
  const processes = ctx.system.workers.get(name)!;
  return (pid !== null ? ctx.system.workerByPid(name, pid) : undefined) ?? processes[0]!;
}

const pick = <T>(random: () => number, list: readonly T[]): T =>
  list[Math.floor(random() * list.length)]!;

/** SIGKILL of the ingest, repeatedly: each strikes an ingest at work. */
async function killIngest(ctx: FaultContext): Promise<void> {
  for (let n = 0; n < ctx.settings.repeats.ingestKills; n += 1) {
    // Each kill strikes an ingest at work: its successor's stream open, then a while.
    await ctx.system.ingest.current.waitForLine(/change stream open/, 30_000);
    if (n > 0) await ctx.pause(300, 1500);
    await ctx.fault('ingest SIGKILL', async () => {
      await ctx.system.ingest.kill(); // its supervisor starts the next one at once
    });
  }
}

/** Kills Redis, waits `downMs`, starts it again on the same port and files (AOF replayed). */
async function redisOutage(ctx: FaultContext, downMs: number): Promise<void> {
  await ctx.fault(`Redis down ${downMs} ms`, async () => {
    await ctx.servers.redis.kill('SIGKILL');
    await ctx.sleep(downMs);
    await ctx.servers.redis.restart();
  });
}

/** Drops or renames collection `a` (the writer goes on writing to it, recreating it). */
async function namespaceChanges(ctx: FaultContext, kind: 'drop' | 'rename'): Promise<void> {
  const db = ctx.servers.admin.db(ctx.system.db);
  for (let n = 1; n <= ctx.settings.repeats.namespaceChanges; n += 1) {
    if (n > 1) await ctx.pause(1000, 2500);
    await ctx.fault(`${kind} of ${ctx.system.db}.a`, async () => {
      if (kind === 'drop') await db.collection('a').drop();
      else await db.collection('a').rename(`a_renamed_${n}`);
    });
  }
}

export const ROWS: readonly Row[] = [
  {
    id: 'none',
    title: 'no fault (the baseline)',
    expect: 'clean',
    async inject(ctx) {
      // A fault that ends at once: its "recovery" is the pipeline's latency under this load.
      await ctx.fault('nothing', async () => undefined);
    },
  },
  {
    id: 'ingest-sigkill',
    title: 'SIGKILL of the ingest, repeatedly',
    expect: 'clean',
    inject: killIngest,
  },
  {
    id: 'ingest-sigkill-transactions',
    title:
      'SIGKILL of the ingest, repeatedly, among transactions of up to 60 events read in batches of 20',
    expect: 'clean',
    transactionSize: 60,
    batchSize: 20,
    inject: killIngest,
  },
  {
    id: 'routing-key-changes',
    title:
      'routing by a field every update changes ([routing] fullDocument.v): SIGKILL of the ingest and of workers',
    expect: 'clean',
    // Every update moves its document to another key's line (v is incremented; a replace sets
    // it to -1): each is held behind a handoff marker in the old key's line. Per-document order
    // across those moves, under kills, is what the row checks (each life of a document apart:
    // a re-inserted document is a new one to a field key).
    routingKey: 'fullDocument.v',
    async inject(ctx) {
      for (let n = 0; n < ctx.settings.repeats.ingestKills; n += 1) {
        await ctx.system.ingest.current.waitForLine(/change stream open/, 30_000);
        await ctx.pause(300, 1500);
        await ctx.fault('ingest SIGKILL', async () => {
          await ctx.system.ingest.kill();
        });
        const name = pick(ctx.random, ctx.system.names);
        const victim = await activeWorker(ctx, name);
        await ctx.pause(300, 1000);
        await ctx.fault(`worker ${name} SIGKILL`, async () => {
          await victim.kill();
        });
        await waitFor(
          async () => (await ctx.system.leaseHolder(name)) === victim.current.pid,
          `worker ${name}'s successor to take the lease`,
          30_000,
        );
      }
    },
  },
  {
    id: 'worker-sigkill',
    title: 'SIGKILL of a worker, repeatedly',
    expect: 'clean',
    async inject(ctx) {
      for (let n = 0; n < ctx.settings.repeats.workerKills; n += 1) {
        if (n > 0) await ctx.pause(500, 2000);
        const name = pick(ctx.random, ctx.system.names);
        const victim = await activeWorker(ctx, name);
        await ctx.fault(`worker ${name} SIGKILL`, async () => {
          await victim.kill(); // its supervisor starts the next one at once
        });
        // Each kill strikes a worker at work: wait until the successor holds the lease.
        await waitFor(
          async () => (await ctx.system.leaseHolder(name)) === victim.current.pid,
          `worker ${name}'s successor to take the lease`,
          30_000,
        );
      }
    },
  },
  {
    id: 'ingest-sigstop',
    title: 'SIGSTOP of the ingest, then SIGCONT',
    expect: 'clean',
    async inject(ctx) {
      // Paused as long as Redis in its row, past its lease (3 s): with no standby, it wakes up
      // deposed (its fenced writes refused, or its lease lapsed) and takes its lease again.
      for (let n = 0; n < ctx.settings.repeats.ingestPauses; n += 1) {
        if (n > 0) await ctx.pause(1500, 3000);
        await ctx.fault(`ingest SIGSTOP ${ctx.settings.pauseMs} ms`, async () => {
          ctx.system.ingest.signal('SIGSTOP');
          await ctx.sleep(ctx.settings.pauseMs);
          ctx.system.ingest.signal('SIGCONT');
        });
      }
    },
  },
  {
    id: 'worker-sigstop',
    title: 'SIGSTOP of a worker past its lease (a standby takes over), then SIGCONT',
    expect: 'clean',
    standbys: ['alpha'],
    async inject(ctx) {
      const pauseMs = 2 * LEASE_TTL_MS + 1000;
      for (let n = 0; n < ctx.settings.repeats.workerPauses; n += 1) {
        // The paused process resumes as the standby; the next pause strikes the new holder.
        if (n > 0) await ctx.pause(1500, 3000);
        const paused = await activeWorker(ctx, 'alpha');
        await ctx.fault(`worker alpha SIGSTOP ${pauseMs} ms`, async () => {
          paused.signal('SIGSTOP');
          await ctx.sleep(pauseMs);
          const holder = await ctx.system.leaseHolder('alpha');
          if (holder === paused.current.pid)
            ctx.fail('the standby did not take the lease of the paused worker');
          paused.signal('SIGCONT');
        });
      }
    },
  },
  {
    id: 'standby-ingest-sigkill',
    title: 'SIGKILL of the leading ingest, repeatedly (the standby takes over)',
    expect: 'clean',
    standbyIngest: true,
    async inject(ctx) {
      for (let n = 0; n < ctx.settings.repeats.leaderKills; n += 1) {
        await ctx.pause(500, 2500);
        const leader = await leadingIngest(ctx);
        const pid = leader.current.pid;
        await ctx.fault('leading ingest SIGKILL', async () => {
          await leader.kill(); // its supervisor starts it again, as a standby
          // Ended once the other ingest holds the lease and streams again.
          const next = await leadingIngest(ctx, pid);
          await next.current.waitForLine(/change stream open/, 30_000);
        });
      }
    },
  },
  {
    id: 'standby-ingest-sigstop',
    title: 'SIGSTOP of the leading ingest past its lease (the standby takes over), then SIGCONT',
    expect: 'clean',
    standbyIngest: true,
    async inject(ctx) {
      const pauseMs = 2 * LEASE_TTL_MS + 1000;
      for (let n = 0; n < ctx.settings.repeats.leaderPauses; n += 1) {
        // The paused one resumes as the standby; the next pause strikes the one that took over.
        await ctx.pause(1000, 2500);
        const paused = await leadingIngest(ctx);
        const run = paused.current;
        await ctx.fault(`leading ingest SIGSTOP ${pauseMs} ms`, async () => {
          paused.signal('SIGSTOP');
          await ctx.sleep(pauseMs);
          const leader = await ctx.system.ingestLeader();
          if (leader === undefined || leader === paused)
            ctx.fail('the standby ingest did not take the lease of the paused one');
          paused.signal('SIGCONT');
          // It wakes up deposed: it must say so, and wait as a standby (not stream on).
          await run.waitForLine(/"msg":"deposed: /, 15_000).catch(() => {
            ctx.fail('the paused ingest did not log that it was deposed');
          });
        });
      }
    },
  },
  {
    id: 'operator-pause',
    title: 'changeq pause of the ingest and a worker, the paused worker SIGKILLed, then resume',
    expect: 'clean',
    async inject(ctx) {
      const redis = ctx.servers.redisClient;
      const prefix = ctx.system.prefix;
      const ingest: PauseTarget = { kind: 'ingest', id: ctx.system.ingestId };
      for (let n = 0; n < ctx.settings.repeats.workerKills; n += 1) {
        if (n > 0) await ctx.pause(500, 2000);
        const name = pick(ctx.random, ctx.system.names);
        const worker: PauseTarget = { kind: 'worker', name };
        await ctx.fault(`pause ingest and worker ${name}, SIGKILL it, resume`, async () => {
          await requestPause(redis, prefix, ingest, true);
          await requestPause(redis, prefix, worker, true);
          const victim = await activeWorker(ctx, name);
          const before = victim.current.pid;
          await ctx.sleep(1000);
          await victim.kill(); // its supervisor starts the next one at once
          // The successor takes the lease over and must start paused.
          try {
            await waitFor(
              async () => {
                const holder = await ctx.system.leaseHolder(name);
                const { report } = await readPause(redis, prefix, worker);
                return (
                  holder !== null &&
                  holder !== before &&
                  report?.state === 'paused' &&
                  report.pid === holder
                );
              },
              `worker ${name}'s successor to report paused`,
              3 * LEASE_TTL_MS + 10_000,
            );
          } catch (error) {
            ctx.fail((error as Error).message);
          }
          await requestPause(redis, prefix, worker, false);
          await requestPause(redis, prefix, ingest, false);
        });
      }
    },
  },
  {
    id: 'redis-kill-1s',
    title: 'Redis killed, restarted from its AOF after 1 s',
    expect: 'clean',
    async inject(ctx) {
      for (let n = 0; n < ctx.settings.repeats.redisShortOutages; n += 1) {
        if (n > 0) await ctx.pause(1500, 3000);
        await redisOutage(ctx, ctx.settings.redisShortOutageMs);
      }
    },
  },
  {
    id: 'redis-kill-10s',
    title: 'Redis killed, restarted from its AOF after 10 s',
    expect: 'clean',
    async inject(ctx) {
      for (let n = 0; n < ctx.settings.repeats.redisLongOutages; n += 1) {
        if (n > 0) await ctx.pause(3000, 5000);
        await redisOutage(ctx, ctx.settings.redisLongOutageMs);
      }
    },
  },
  {
    id: 'redis-pause',
    title: 'Redis paused (SIGSTOP), then SIGCONT',
    expect: 'clean',
    async inject(ctx) {
      for (let n = 0; n < ctx.settings.repeats.redisPauses; n += 1) {
        if (n > 0) await ctx.pause(1500, 3000);
        await ctx.fault(`Redis SIGSTOP ${ctx.settings.pauseMs} ms`, async () => {
          process.kill(ctx.servers.redis.pid, 'SIGSTOP');
          try {
            await ctx.sleep(ctx.settings.pauseMs);
          } finally {
            process.kill(ctx.servers.redis.pid, 'SIGCONT');
          }
        });
      }
    },
  },
  {
    id: 'redis-empty',
    title: 'Redis restarted EMPTY (its data lost)',
    expect: 'stop',
    async inject(ctx) {
      await ctx.fault('Redis restarted empty', async () => {
        await ctx.servers.redis.kill('SIGKILL');
        ctx.servers.wipeRedisData();
        await ctx.sleep(1000);
        ctx.markReset();
        await ctx.servers.redis.restart();
      });
    },
  },
  {
    id: 'mongo-restart',
    title: 'the MongoDB server killed and restarted',
    expect: 'clean',
    async inject(ctx) {
      for (let n = 0; n < ctx.settings.repeats.mongoRestarts; n += 1) {
        if (n > 0) await ctx.pause(2000, 4000);
        await ctx.fault('MongoDB SIGKILL and restart', async () => {
          await ctx.servers.mongo.kill('SIGKILL');
          await ctx.servers.mongo.restart();
          await ctx.servers.waitWritable();
        });
      }
    },
  },
  {
    id: 'mongo-drop-connections',
    title: "MongoDB drops the ingest's connections (failCommand closeConnection)",
    expect: 'clean',
    async inject(ctx) {
      for (let n = 0; n < ctx.settings.repeats.droppedConnections; n += 1) {
        if (n > 0) await ctx.pause(500, 1500);
        // Over once it has struck: the stream's next getMore (or its reopening aggregate).
        await ctx.fault('connection closed', async () => {
          const fired = await ctx.servers.failOnce('failCommand', {
            failCommands: ['getMore', 'aggregate'],
            closeConnection: true,
            appName: ingestAppName(ctx.system),
          });
          if (!fired) ctx.fail(`dropped connection ${n + 1} never struck`);
        });
      }
    },
  },
  {
    id: 'mongo-resumable-errors',
    title: 'resumable errors on the change stream (failGetMoreAfterCursorCheckout, and unlabelled)',
    expect: 'clean',
    async inject(ctx) {
      // In turn: a code MongoDB 7.0 labels ResumableChangeStreamError when a getMore holding its
      // cursor hits it (the driver resumes by itself), and a code raised before the cursor is
      // checked out, which carries no label (the ingest reopens the stream from its stored
      // position). Some are "not primary" or "shutting down" codes, after which the driver also
      // waits for its monitor to see the server again (up to heartbeatFrequencyMS).
      const errors: [code: number, labelled: boolean][] = [
        [9001, true],
        [6, false],
        [91, true],
        [189, false],
        [10107, true],
        [89, false],
        [262, true],
        [11602, false],
        [63, true],
        [13436, false],
      ];
      for (let n = 0; n < ctx.settings.repeats.resumableErrors; n += 1) {
        if (n > 0) await ctx.pause(500, 1500);
        const [code, labelled] = errors[n % errors.length]!;
        const appName = ingestAppName(ctx.system);
        await ctx.fault(`error ${code} ${labelled ? 'labelled' : 'unlabelled'}`, async () => {
          const fired = labelled
            ? await ctx.servers.failOnce('failGetMoreAfterCursorCheckout', {
                errorCode: code,
                appName,
              })
            : await ctx.servers.failOnce('failCommand', {
                failCommands: ['getMore'],
                errorCode: code,
                appName,
              });
          if (!fired) ctx.fail(`error ${code} never struck`);
        });
      }
    },
  },
  {
    id: 'mongo-stepdown',
    title: 'the MongoDB primary steps down (replSetStepDown), then is elected again',
    expect: 'clean',
    async inject(ctx) {
      for (let n = 0; n < ctx.settings.repeats.stepDowns; n += 1) {
        if (n > 0) await ctx.pause(2000, 4000);
        const secs = ctx.settings.stepDownSeconds;
        await ctx.fault(`step-down ${secs} s`, async () => {
          await ctx.servers.admin
            .db('admin')
            .command({ replSetStepDown: secs, secondaryCatchUpPeriodSecs: 0, force: true });
          await ctx.servers.waitWritable();
        });
      }
    },
  },
  {
    id: 'collection-drop',
    title: 'a collection of the watched database dropped',
    expect: 'clean',
    inject: (ctx) => namespaceChanges(ctx, 'drop'),
  },
  {
    id: 'collection-rename',
    title: 'a collection of the watched database renamed',
    expect: 'clean',
    inject: (ctx) => namespaceChanges(ctx, 'rename'),
  },
  {
    id: 'watched-collection-drop',
    title: 'the watched collection dropped (the stream is invalidated)',
    expect: 'clean',
    watch: 'collection',
    inject: (ctx) => namespaceChanges(ctx, 'drop'),
  },
  {
    id: 'watched-collection-rename',
    title: 'the watched collection renamed (the stream is invalidated)',
    expect: 'clean',
    watch: 'collection',
    inject: (ctx) => namespaceChanges(ctx, 'rename'),
  },
  {
    id: 'worker-name-added',
    title: 'a worker name added while writing (its worker started 2 s later)',
    expect: 'clean',
    addedNames: ['delta'],
    async inject(ctx) {
      await ctx.fault('delta added to workers.toml', async () => {
        const epoch = await ctx.system.setNames([...ctx.system.names, 'delta']);
        ctx.note(`ring epoch ${epoch} routes to delta; its events queue until its worker starts`);
        await ctx.sleep(2000);
        ctx.system.startName('delta');
      });
    },
    route: (system) => system.ringRoute(),
  },
  {
    id: 'worker-name-removed',
    title: 'a worker name removed while writing (its worker runs until drained)',
    expect: 'clean',
    async inject(ctx) {
      const leaving = pick(ctx.random, ctx.system.names);
      const worker = await activeWorker(ctx, leaving);
      const removedAt = await ctx.fault(`${leaving} removed from workers.toml`, async () => {
        await ctx.system.setNames(ctx.system.names.filter((name) => name !== leaving));
        return Date.now();
      });
      // The removed name's worker says when it is safe to stop: its queue ran empty.
      try {
        await worker.current.waitForLine(/drained: this name left the ring/, 60_000);
        ctx.note(`${leaving} drained ${Date.now() - removedAt} ms after the ring change`);
      } catch {
        ctx.fail(`${leaving}'s worker never said it was drained`);
      }
    },
    route: (system) => system.ringRoute(),
  },
];
