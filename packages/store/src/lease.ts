/**
 * A lease that makes exactly one process the active one for a role (a worker name today).
 *
 * `SET key value NX PX ttl` through a script that also increments a fencing counter: each
 * acquisition gets a number larger than every earlier one, and it is part of the job lock token,
 * so a job lock taken by an older holder can be told apart from ours. The holder renews the
 * lease every ttl/5 with a compare-and-extend script (only if the value is still its own) and
 * considers it valid for 0.6 × ttl after the start of the last successful renewal: it stops
 * taking jobs 0.4 × ttl (on its own clock) before any other process can acquire the lease.
 *
 * A process that restarts after a crash (kill -9) need not wait out its predecessor's lease: a
 * lease whose holder names this host and a process id that no longer exists here is taken over
 * at once (compare-and-set on the value seen; the fencing number still grows, so anything the
 * dead holder left in flight is fenced as usual). A holder on another host, or a process id that
 * exists (perhaps reused), is waited for as before.
 *
 * The fencing counter only grows, so finding it below a fence this process held means Redis lost
 * its data (restarted without persistence, restored an older copy, or flushed): the renewal reads
 * it, and so does the next acquisition (`onDataLost`).
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { encodeLeaseRequest, parseLeaseValue, type LeaseHolder } from './codecs/lease.js';
import { Scripts } from './scripts.js';

export interface LeaseOptions {
  redis: Redis;
  /** The lease (e.g. workerKeys().lease). */
  key: string;
  /** Its fencing counter (e.g. workerKeys().fence). */
  fenceKey: string;
  /** What the holder is for, stored in the lease value (a worker lease: `{ worker: name }`). */
  labels?: Pick<LeaseHolder, 'worker'>;
  ttlMs: number;
  /** Called once when the lease is lost (renewal refused, or not renewed in time). */
  onLost: (reason: string) => void;
  /** A renewal failed for a reason other than losing the lease (usually Redis unreachable). */
  onRenewError?: (error: unknown) => void;
  /** The fencing counter went back below a fence this process held: Redis lost its data. */
  onDataLost?: (loss: LeaseDataLoss) => void;
  /** The lease was taken over from a holder of this host whose process is gone. */
  onDeadHolder?: (holder: LeaseHolder) => void;
}

export interface LeaseDataLoss {
  /** The largest fence this process held. */
  heldFence: number;
  /** The fencing counter found (0 when it was missing). */
  counter: number;
}

export class Lease {
  readonly owner = randomUUID();
  private value: string | undefined;
  private holder: LeaseHolder | undefined;
  private validUntil = 0;
  private renewTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private lost = false;
  /** The largest fence this process held (or the counter found since Redis lost its data). */
  private highestFence = 0;
  private readonly opts: LeaseOptions;

  constructor(opts: LeaseOptions) {
    this.opts = opts;
  }

  /** The fencing number of the current acquisition. */
  get fence(): number {
    return this.holder?.fence ?? 0;
  }

  /** Whether this process may act as the active one right now (by its own clock). */
  isValid(): boolean {
    return this.value !== undefined && !this.lost && Date.now() < this.validUntil;
  }

  /** Who holds the lease now (undefined when nobody does). */
  async currentHolder(): Promise<LeaseHolder | undefined> {
    return parseLeaseValue(await this.opts.redis.get(this.opts.key));
  }

  /** One attempt to acquire; true when this process now holds the lease (and renews it). */
  async tryAcquire(): Promise<boolean> {
    const started = Date.now();
    const info = encodeLeaseRequest({
      owner: this.owner,
      ...this.opts.labels,
      pid: process.pid,
      host: hostname(),
      startedAt: new Date().toISOString(),
    });
    const seen = await this.opts.redis.get(this.opts.key);
    const dead = seen !== null && deadOnThisHost(parseLeaseValue(seen)) ? seen : '';
    const value = await Scripts.of(this.opts.redis).acquireLease(
      { lease: this.opts.key, fence: this.opts.fenceKey },
      info,
      this.opts.ttlMs,
      dead,
    );
    if (value === null) return false;
    if (dead !== '') this.opts.onDeadHolder?.(parseLeaseValue(dead)!);
    this.value = value;
    this.holder = parseLeaseValue(value);
    this.lost = false;
    if (this.fence <= this.highestFence) this.dataLost(this.fence - 1);
    this.highestFence = this.fence;
    this.renewed(started);
    this.scheduleRenewal();
    return true;
  }

  /** Stops renewing and deletes the lease if it is still ours, so a standby takes over now. */
  async release(): Promise<void> {
    this.stopTimers();
    const value = this.value;
    this.value = undefined;
    this.lost = true;
    if (value !== undefined) {
      await Scripts.of(this.opts.redis).releaseLease(this.opts.key, value);
    }
  }

  /** Declares the lease lost (another process was seen acting as the holder). */
  invalidate(reason: string): void {
    this.markLost(reason);
  }

  /** Stops renewing without touching Redis (after the lease was lost). */
  abandon(): void {
    this.stopTimers();
    this.value = undefined;
  }

  private renewed(startedAt: number): void {
    this.validUntil = startedAt + Math.floor(this.opts.ttlMs * 0.6);
    clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(
      () =>
        this.markLost(`the lease was not renewed within ${Math.floor(this.opts.ttlMs * 0.6)} ms`),
      Math.max(0, this.validUntil - Date.now()),
    );
  }

  private scheduleRenewal(): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renew(), Math.max(50, this.opts.ttlMs / 5));
  }

  private async renew(): Promise<void> {
    if (this.lost || this.value === undefined) return;
    const started = Date.now();
    try {
      const { renewed, counter } = await Scripts.of(this.opts.redis).extendLease(
        { lease: this.opts.key, fence: this.opts.fenceKey },
        this.value,
        this.opts.ttlMs,
      );
      if (this.lost || this.value === undefined) return;
      if (counter < this.fence) {
        const held = this.fence;
        this.dataLost(counter);
        this.markLost(
          `Redis lost the lease: its fencing counter is at ${counter}, below the fence ${held} this process held`,
        );
        return;
      }
      if (!renewed) {
        this.markLost('another process holds the lease now');
        return;
      }
      this.renewed(started);
    } catch (error) {
      this.opts.onRenewError?.(error);
    }
    this.scheduleRenewal();
  }

  /** Reports the loss once: the counter found becomes the fence to compare with from now on. */
  private dataLost(counter: number): void {
    const heldFence = this.highestFence;
    this.highestFence = counter;
    this.opts.onDataLost?.({ heldFence, counter });
  }

  private markLost(reason: string): void {
    if (this.lost) return;
    this.lost = true;
    this.stopTimers();
    this.opts.onLost(reason);
  }

  private stopTimers(): void {
    clearTimeout(this.renewTimer);
    clearTimeout(this.expiryTimer);
    this.renewTimer = undefined;
    this.expiryTimer = undefined;
  }
}

/**
 * Whether a lease holder is a process of this host that no longer exists. Our own pid is never
 * taken for dead (a predecessor with the same pid, as in a container, is waited for), and a pid
 * we may not signal (EPERM) exists.
 */
function deadOnThisHost(holder: LeaseHolder | undefined): boolean {
  if (!holder || holder.host !== hostname() || holder.pid === process.pid) return false;
  if (!Number.isInteger(holder.pid) || holder.pid <= 0) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
