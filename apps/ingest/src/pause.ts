/**
 * `changeq pause --ingest`: at a batch boundary (everything read before it committed and its
 * position stored), the ingest closes its change stream and enqueues nothing until the flag is
 * cleared; then it opens the stream again from the stored position. The lease is not touched:
 * a paused ingest stays the active one, and a standby taking over reads the same flag.
 */
import type { Logger } from '@changeq/shared';
import type { PauseRequest, PauseState } from '@changeq/store';
import type { Clock } from './ports.js';

/** The flag and the report in Redis (the store's PauseWatch). */
export interface PausePort {
  readonly pollMs: number;
  request(): Promise<PauseRequest | null>;
  report(state: PauseState, request: PauseRequest | null): Promise<void>;
  clear(): Promise<void>;
}

export class IngestPause {
  constructor(
    private readonly watch: PausePort,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** The pause asked for, if any (Redis is read at most once per poll interval). */
  asked(): Promise<PauseRequest | null> {
    return this.watch.request();
  }

  /** Says the ingest runs (refreshed now and then, for `changeq status`). */
  running(): Promise<void> {
    return this.watch.report('running', null);
  }

  /**
   * Holds the ingest while the flag is set; resolves when it is cleared or `signal` fires.
   * The caller closed the stream: nothing is read, so nothing can be enqueued.
   */
  async hold(request: PauseRequest, position: string, signal: AbortSignal): Promise<void> {
    this.log.warn(
      { pause: request.id, askedAt: request.at, position },
      'paused by the operator (changeq pause --ingest): change stream closed, nothing is enqueued; the lease and the position stay',
    );
    await this.watch.report('paused', request);
    let current: PauseRequest | null = request;
    while (current !== null) {
      if (!(await this.clock.sleep(this.watch.pollMs, signal))) return;
      current = await this.watch.request();
      await this.watch.report(current ? 'paused' : 'running', current);
    }
    this.log.info(
      { position },
      'resumed by the operator: reading the change stream from the stored position',
    );
  }

  /** The process stops: nothing answers for this ingest any more. */
  clear(): Promise<void> {
    return this.watch.clear();
  }
}
