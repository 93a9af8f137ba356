/**
 * Whether this worker's name is still in the ring (see the store's RingStore): a name removed
 * from workers.toml keeps its process running while its queue still holds jobs (the events
 * queued before the ring change, and its handoff marker): it is *draining*, and once its queue is
 * empty and nothing is held it is *drained*: safe to stop. Both transitions are logged once.
 */
import type { Queue } from 'bullmq';
import { sleep, type Logger } from '@changeq/shared';
import { unfinishedJobs, type RingStore } from '@changeq/store';

/** `joining`: not in the ring yet (the ingest has not applied the file that adds it). */
export type Membership = 'active' | 'joining' | 'draining' | 'drained';

export interface MembershipOptions {
  worker: string;
  ring: Pick<RingStore, 'load'>;
  queue: Pick<Queue, 'getJobCounts'>;
  /** Jobs held in this process (fetched, not finished). */
  held: () => number;
  log: Logger;
  signal: AbortSignal;
  intervalMs?: number;
}


export class MembershipWatch {
  state: Membership = 'active';

  constructor(private readonly options: MembershipOptions) {}

  async run(): Promise<void> {
    const { signal } = this.options;
    while (!signal.aborted) {
      await this.check().catch((error: unknown) =>
        this.options.log.debug({ err: error }, 'could not read the ring; trying again'),
      );
      await sleep(this.options.intervalMs ?? 2000, signal);
    }
  }

  async check(): Promise<Membership> {
    const { worker, ring, queue, held, log } = this.options;
    const epochs = await ring.load();
    const current = epochs?.[epochs.length - 1];
    let next: Membership = 'active';
    if (epochs && !epochs.some((epoch) => epoch.names.includes(worker))) next = 'joining';
    else if (current && !current.names.includes(worker)) {
      const left = held() + (await unfinishedJobs(queue));
      next = left === 0 ? 'drained' : 'draining';
    }
    if (next !== this.state) {
      if (next === 'draining') {
        log.info(
          { epoch: current?.epoch },
          'draining: this name left the ring; the jobs queued here before the change still run, no new events arrive',
        );
      } else if (next === 'drained') {
        log.info(
          { epoch: current?.epoch },
          'drained: this name left the ring and its queue is empty; safe to stop this worker',
        );
      } else if (next === 'joining') {
        log.info(
          { epoch: current?.epoch },
          'not in the ring yet: events arrive once the ingest applies the workers.toml that adds this name',
        );
      } else {
        log.info({ epoch: current?.epoch }, 'active: this name is in the ring');
      }
      this.state = next;
    }
    return next;
  }
}
