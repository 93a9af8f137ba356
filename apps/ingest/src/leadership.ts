/**
 * Standby ingests: any number of ingest processes may run with the same settings; the one that
 * holds the ingest lease (the store's generic Lease, with its fencing counter) streams, the
 * others wait and take over when its lease ends (a killed leader is replaced within the lease's
 * time to live). The lease alone is not enough, since a leader paused (SIGSTOP, a long GC) or
 * cut off past its lease may still be about to write: every write of a leader is fenced by its
 * number (see the store's Enqueuer and PositionStore), so that a deposed one is refused.
 *
 * Every process also writes who it is (leader or standby) to the members hash every few
 * seconds, which `changeq status` and /metrics show.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { sleep, type Logger } from '@changeq/shared';
import { IngestMembers, Lease, type IngestMember, type LeaseHolder } from '@changeq/store';
import { ingestKeys } from '@changeq/store';

export interface LeadershipOptions {
  redis: Redis;
  prefix: string;
  ingestId: string;
  /** The lease's time to live (INGEST_LEASE_TTL_MS): a killed leader is replaced within it. */
  ttlMs: number;
  log: Logger;
}

/** What the ingest sees of its leadership (tests may hand it a fake). */
export interface LeadershipPort {
  /** Waits until this process holds the lease: its fencing number; null when `signal` fired. */
  acquire(signal: AbortSignal): Promise<number | null>;
  /** Called once when the lease is lost during a term (null: nobody listens). */
  onLost(listener: ((reason: string) => void) | null): void;
  /** Ends a term: gives the lease back (`release`: stopping, a standby takes over now) or not. */
  endTerm(release: boolean): Promise<void>;
  /** The leader and the standbys as last seen (for status and metrics). */
  readonly view: LeadershipView;
  close(): Promise<void>;
}

export interface LeadershipView {
  role: 'leader' | 'standby';
  fence: number | null;
  leader: IngestMember | null;
  standbys: IngestMember[];
}

export class Leadership implements LeadershipPort {
  private readonly lease: Lease;
  private readonly members: IngestMembers;
  private readonly startedAt = new Date().toISOString();
  private lost: ((reason: string) => void) | null = null;
  private timer: NodeJS.Timeout | undefined;
  readonly view: LeadershipView = { role: 'standby', fence: null, leader: null, standbys: [] };

  constructor(private readonly options: LeadershipOptions) {
    const keys = ingestKeys(options.prefix, options.ingestId);
    this.members = new IngestMembers(options.redis, options.prefix, options.ingestId);
    this.lease = new Lease({
      redis: options.redis,
      key: keys.lease,
      fenceKey: keys.fence,
      ttlMs: options.ttlMs,
      onLost: (reason) => {
        this.view.role = 'standby';
        this.view.fence = null;
        this.lost?.(reason);
      },
      onRenewError: (error) =>
        options.log.debug({ err: error }, 'ingest lease renewal failed; retrying'),
      onDeadHolder: (dead) =>
        options.log.info(
          { pid: dead.pid, fence: dead.fence },
          'ingest lease taken over at once: its holder was a process of this host that is gone',
        ),
    });
  }

  /** How often a standby tries the lease, and every process writes its members entry. */
  private get pollMs(): number {
    return Math.min(1000, Math.max(50, this.options.ttlMs / 4));
  }

  async acquire(signal: AbortSignal): Promise<number | null> {
    this.startBeats();
    let logged = false;
    let failing = false;
    while (!signal.aborted) {
      try {
        if (await this.lease.tryAcquire()) {
          this.view.role = 'leader';
          this.view.fence = this.lease.fence;
          await this.beat();
          return this.lease.fence;
        }
        failing = false;
      } catch (error) {
        if (!failing)
          this.options.log.warn(
            { err: error },
            'could not reach Redis for the ingest lease; retrying',
          );
        failing = true;
      }
      if (!logged && !failing) {
        const holder: LeaseHolder | undefined = await this.lease
          .currentHolder()
          .catch(() => undefined);
        this.options.log.info(
          { holder },
          `standby: another ingest with INGEST_ID "${this.options.ingestId}" streams${holder ? ` (pid ${holder.pid} on ${holder.host}, fence ${holder.fence})` : ''}; taking over when its lease ends`,
        );
        logged = true;
      }
      await sleep(this.pollMs, signal);
    }
    return null;
  }

  onLost(listener: ((reason: string) => void) | null): void {
    this.lost = listener;
  }

  async endTerm(release: boolean): Promise<void> {
    this.view.role = 'standby';
    this.view.fence = null;
    if (release) await this.lease.release().catch(() => undefined);
    else this.lease.abandon();
    await this.beat();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.members.remove(this.lease.owner).catch(() => undefined);
  }

  private startBeats(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.beat(), this.pollMs);
    this.timer.unref();
  }

  /** Writes this process's entry and reads everyone's (failures: shown as they were). */
  private async beat(): Promise<void> {
    const now = Date.now();
    const role = this.view.role === 'leader' && this.lease.isValid() ? 'leader' : 'standby';
    try {
      await this.members.write({
        owner: this.lease.owner,
        pid: process.pid,
        host: hostname(),
        role,
        fence: role === 'leader' ? this.lease.fence : null,
        startedAt: this.startedAt,
        seenAt: now,
        // Three missed writes, and at least a lease's time: a killed process leaves the list.
        expiresAt: now + Math.max(this.options.ttlMs, 3 * this.pollMs),
      });
      const members = await this.members.list(now);
      this.view.leader = members.find((m) => m.role === 'leader') ?? null;
      this.view.standbys = members.filter((m) => m.role === 'standby');
    } catch {
      // Redis is away: the ingest's own retries say so; the view stays as last seen.
    }
  }
}
