/**
 * The ingest processes of one INGEST_ID, leader and standbys, for `changeq status` and
 * /metrics: each process writes its own entry (a hash field, JSON with an expiry time) every few
 * seconds; an entry not written again before it expires is dropped by the next reader. Only
 * what operators are shown: the lease alone decides who streams.
 */
import type { Redis } from 'ioredis';
import { ingestKeys } from './keys.js';

export interface IngestMember {
  owner: string;
  pid: number;
  host: string;
  /** `leader`: holds the lease and streams; `standby`: waits for the lease. */
  role: 'leader' | 'standby';
  /** The leader's fencing number (null for a standby). */
  fence: number | null;
  startedAt: string;
  /** When the entry was written, and when it stops counting unless written again (ms). */
  seenAt: number;
  expiresAt: number;
}

export class IngestMembers {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    ingestId: string,
  ) {
    this.key = ingestKeys(prefix, ingestId).members;
  }

  async write(member: IngestMember): Promise<void> {
    await this.redis.hset(this.key, member.owner, JSON.stringify(member));
  }

  async remove(owner: string): Promise<void> {
    await this.redis.hdel(this.key, owner);
  }

  /** The live entries, leaders first (largest fence first), then standbys by start; expired ones are dropped. */
  async list(now = Date.now()): Promise<IngestMember[]> {
    const entries = await this.redis.hgetall(this.key);
    const live: IngestMember[] = [];
    const expired: string[] = [];
    for (const [owner, raw] of Object.entries(entries)) {
      let member: IngestMember | null = null;
      try {
        member = JSON.parse(raw) as IngestMember;
      } catch {
        member = null;
      }
      if (member === null || !(member.expiresAt > now)) expired.push(owner);
      else live.push(member);
    }
    if (expired.length > 0) await this.redis.hdel(this.key, ...expired).catch(() => undefined);
    // A deposed leader's entry may say "leader" until it writes again: the larger fence leads.
    return live.sort(
      (a, b) =>
        Number(b.role === 'leader') - Number(a.role === 'leader') ||
        (b.fence ?? 0) - (a.fence ?? 0) ||
        a.startedAt.localeCompare(b.startedAt),
    );
  }
}
