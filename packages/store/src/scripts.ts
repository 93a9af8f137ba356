/**
 * The gateway to changeq's Redis scripts, one typed method per script. Each script is a file
 * `lua/<name>-<numkeys>.lua` whose header states its KEYS, ARGV and reply. They are defined once
 * per connection as ioredis commands (`defineCommand`): ioredis sends a script in full the first
 * time a socket runs it and by its SHA1 (EVALSHA) after that, and sends it in full again when
 * Redis answers NOSCRIPT (it lost its scripts: SCRIPT FLUSH, a restart without persistence).
 *
 * Inside MULTI that recovery cannot happen: a script's NOSCRIPT only shows in EXEC's reply, and
 * ioredis keeps sending the hash on that socket. Whoever runs scripts in a transaction must
 * replace the connection after a NOSCRIPT (see Enqueuer), as for BullMQ's own scripts.
 *
 * Keys a script builds itself (a job's hash from the queue's key prefix and an id) all share the
 * prefix's cluster slot, so that the number of KEYS stays fixed (as BullMQ's scripts do).
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { ChainableCommander, Redis } from 'ioredis';

/** Shipped beside `src` and `dist` (package.json `files`), so both find it at the same place. */
const LUA_DIR = new URL('../lua/', import.meta.url);

interface ScriptFile {
  numberOfKeys: number;
  lua: string;
}

function loadScripts(): Map<string, ScriptFile> {
  const scripts = new Map<string, ScriptFile>();
  for (const file of readdirSync(LUA_DIR)) {
    const match = /^([A-Za-z]+)-(\d+)\.lua$/.exec(file);
    if (!match) continue;
    scripts.set(match[1]!, {
      numberOfKeys: Number(match[2]),
      lua: readFileSync(new URL(file, LUA_DIR), 'utf8'),
    });
  }
  return scripts;
}

const SCRIPTS = loadScripts();

/** The scripts by name, for tests and tools: `name` → number of keys. */
export function scriptNames(): Map<string, number> {
  return new Map([...SCRIPTS].map(([name, script]) => [name, script.numberOfKeys]));
}

/** The ioredis command name of a script: prefixed, so that it cannot replace one of BullMQ's. */
const commandName = (script: string) => `changeq:${script}`;

/** A script's ioredis command: a reply's promise on a connection, the transaction on a MULTI. */
type ScriptCommand = (...keysAndArgs: (string | number)[]) => unknown;

/** Defines scripts on a connection (once each), so that it and its transactions can run them. */
function defineScripts(redis: Redis, names: Iterable<string>): void {
  const commands = redis as unknown as Record<string, unknown>;
  for (const name of names) {
    if (typeof commands[commandName(name)] === 'function') continue;
    redis.defineCommand(commandName(name), SCRIPTS.get(name)!);
  }
}

/** What a commit's transaction runs (see Scripts.forCommits). */
const COMMIT_SCRIPTS = ['setWatermarkIfAllPresent'];

const gateways = new WeakMap<Redis, Scripts>();
const commitGateways = new WeakMap<Redis, Scripts>();

export class Scripts {
  private constructor(
    private readonly redis: Redis,
    names: Iterable<string>,
  ) {
    defineScripts(redis, names);
  }

  /** The gateway of a connection; its scripts are defined on it the first time. */
  static of(redis: Redis): Scripts {
    let scripts = gateways.get(redis);
    if (!scripts) {
      scripts = new Scripts(redis, SCRIPTS.keys());
      gateways.set(redis, scripts);
    }
    return scripts;
  }

  /**
   * The gateway of a connection that only commits jobs (an ingest's commit lane), with only the
   * scripts a commit's transaction runs defined on it: ioredis copies every command defined on a
   * connection onto each transaction it makes, and a small commit would spend much of its CPU
   * copying scripts it never runs. The other methods throw on such a connection.
   */
  static forCommits(redis: Redis): Scripts {
    let scripts = gateways.get(redis) ?? commitGateways.get(redis);
    if (!scripts) {
      scripts = new Scripts(redis, COMMIT_SCRIPTS);
      commitGateways.set(redis, scripts);
    }
    return scripts;
  }

  private run(
    target: Redis | ChainableCommander,
    name: string,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): unknown {
    const script = SCRIPTS.get(name);
    if (!script) throw new Error(`no Redis script lua/${name}-*.lua`);
    if (keys.length !== script.numberOfKeys) {
      throw new Error(`script ${name} takes ${script.numberOfKeys} keys, got ${keys.length}`);
    }
    const command = (target as unknown as Record<string, ScriptCommand>)[commandName(name)];
    if (command === undefined) throw new Error(`script ${name} is not defined on this connection`);
    return command.call(target, ...keys, ...args);
  }

  /**
   * lua/acquireLease-2.lua: the stored value when acquired, null when someone else holds it.
   * `deadHolder`: the stored value of a holder found dead, which may be replaced.
   */
  async acquireLease(
    keys: { lease: string; fence: string },
    description: string,
    ttlMs: number,
    deadHolder = '',
  ): Promise<string | null> {
    const value = await this.run(
      this.redis,
      'acquireLease',
      [keys.lease, keys.fence],
      [description, String(ttlMs), deadHolder],
    );
    return (value as string | null) ?? null;
  }

  /**
   * lua/extendLease-2.lua: whether the lease still held `value` and was renewed, and the fencing
   * counter (0 when it is missing).
   */
  async extendLease(
    keys: { lease: string; fence: string },
    value: string,
    ttlMs: number,
  ): Promise<{ renewed: boolean; counter: number }> {
    const [renewed, counter] = (await this.run(
      this.redis,
      'extendLease',
      [keys.lease, keys.fence],
      [value, String(ttlMs)],
    )) as [number, number];
    return { renewed: renewed === 1, counter };
  }

  /** lua/releaseLease-1.lua: whether the lease still held `value` and was deleted. */
  async releaseLease(lease: string, value: string): Promise<boolean> {
    return (await this.run(this.redis, 'releaseLease', [lease], [value])) === 1;
  }

  /**
   * lua/replacePosition-1.lua: stores `value` at `key` if it still holds `expected` (null: if it
   * is absent); whether it did.
   */
  async replacePosition(key: string, expected: string | null, value: string): Promise<boolean> {
    return (
      (await this.run(
        this.redis,
        'replacePosition',
        [key],
        expected === null ? ['0', '', value] : ['1', expected, value],
      )) === 1
    );
  }

  /**
   * lua/replaceFenced-2.lua: `replacePosition` that also requires `fence.key` to hold
   * `fence.value`: 'stored', 'changed' (the key held something else) or 'fenced' (another
   * leader took over).
   */
  async replaceFenced(
    key: string,
    fence: { key: string; value: number },
    expected: string | null,
    value: string,
  ): Promise<'stored' | 'changed' | 'fenced'> {
    const reply = await this.run(
      this.redis,
      'replaceFenced',
      [key, fence.key],
      [...(expected === null ? ['0', ''] : ['1', expected]), value, String(fence.value)],
    );
    return reply === 1 ? 'stored' : reply === -1 ? 'fenced' : 'changed';
  }

  /** lua/setFenced-2.lua: whether `key` was set (false: `fence.key` no longer holds our number). */
  async setFenced(
    key: string,
    fence: { key: string; value: number },
    value: string,
    ttlSeconds: number,
  ): Promise<boolean> {
    return (
      (await this.run(
        this.redis,
        'setFenced',
        [key, fence.key],
        [value, String(ttlSeconds), String(fence.value)],
      )) === 1
    );
  }

  /** lua/raiseFence-1.lua: the number the fence copy holds now (> `fence`: a newer leader). */
  async raiseFence(key: string, fence: number): Promise<number> {
    return Number(await this.run(this.redis, 'raiseFence', [key], [String(fence)]));
  }

  /** lua/takeOverJobs-2.lua: the ids of the jobs that were still active, now locked by `token`. */
  async takeOverJobs(
    keys: { active: string; stalled: string },
    lock: { jobPrefix: string; suffix: string; token: string; ms: number },
    jobIds: readonly string[],
  ): Promise<string[]> {
    return (await this.run(
      this.redis,
      'takeOverJobs',
      [keys.active, keys.stalled],
      [lock.jobPrefix, lock.suffix, lock.token, String(lock.ms), ...jobIds],
    )) as string[];
  }

  /** lua/reclaimJob-4.lua: see its header for the four outcomes. */
  async reclaimJob(
    keys: { active: string; wait: string; stalled: string; lock: string },
    jobId: string,
    token: string,
    lockMs: number,
  ): Promise<'active' | 'moved-back' | 'gone' | 'foreign'> {
    return (await this.run(
      this.redis,
      'reclaimJob',
      [keys.active, keys.wait, keys.stalled, keys.lock],
      [jobId, token, String(lockMs)],
    )) as 'active' | 'moved-back' | 'gone' | 'foreign';
  }

  /** lua/parkEvent-2.lua: the event's place in its document's parked line. */
  async parkEvent(keys: { line: string; seq: string }, jobId: string): Promise<number> {
    return Number(await this.run(this.redis, 'parkEvent', [keys.line, keys.seq], [jobId]));
  }

  /** lua/unblockDocument-2.lua: whether the document is unblocked now. */
  async unblockDocument(keys: { blocked: string; line: string }, doc: string): Promise<boolean> {
    return (await this.run(this.redis, 'unblockDocument', [keys.blocked, keys.line], [doc])) === 1;
  }

  /**
   * Queues lua/setWatermarkIfAllPresent-2.lua on a transaction of this connection (not sent):
   * its reply in EXEC's is 1 when the watermark was set, 0 when a job was missing.
   */
  queueWatermark(
    transaction: ChainableCommander,
    keys: { watermark: string; jobPrefix: string },
    position: string,
    jobIds: readonly string[],
  ): void {
    this.run(
      transaction,
      'setWatermarkIfAllPresent',
      [keys.watermark, keys.jobPrefix],
      [position, ...jobIds],
    );
  }
}
