/**
 * `changeq pause --worker NAME`: the active process stops fetching and starts no handler call;
 * the calls under way finish and their outcomes are written. The jobs it holds stay held: their
 * locks are extended and the lease renewed as usual, so nothing moves to another process and
 * `changeq resume` continues where it stopped, in order. The flag is polled from Redis (the
 * store's PauseWatch) and the process answers in the report: `pausing` while calls still run,
 * `paused` once none does (what `changeq pause --wait` waits for).
 */
import { sleep } from '@changeq/shared';
import type { PauseRequest, PauseWatch } from '@changeq/store';
import { redisFailed, type SessionContext } from './context.js';

export interface Pausable {
  pause(): void;
  resume(): void;
  readonly activeCalls: number;
}

export class WorkerPause {
  private request: PauseRequest | null = null;

  constructor(
    private readonly ctx: Pick<SessionContext, 'log' | 'events' | 'stopSignal' | 'lease'>,
    private readonly watch: PauseWatch,
    private readonly scheduler: Pausable,
  ) {}

  /** Whether the operator paused this worker (the fetch loop asks before every fetch). */
  get paused(): boolean {
    return this.request !== null;
  }

  /** Reads the flag once and acts on it (called before the session fetches its first job). */
  async check(): Promise<void> {
    this.watch.refresh();
    const request = await this.watch.request();
    if (request !== null && this.request === null) {
      this.scheduler.pause();
      this.ctx.log.warn(
        { pause: request.id, askedAt: request.at, running: this.scheduler.activeCalls },
        'paused by the operator (changeq pause --worker): the handler calls under way finish, none starts; the lease and the jobs held stay',
      );
    } else if (request === null && this.request !== null) {
      this.scheduler.resume();
      this.ctx.log.info('resumed by the operator: running handlers again');
    }
    this.request = request;
    const running = this.scheduler.activeCalls;
    if (request === null) await this.watch.report('running', null);
    else await this.watch.report(running === 0 ? 'paused' : 'pausing', request, running);
  }

  /** Removes the report (the process stops). */
  clear(): Promise<void> {
    return this.watch.clear();
  }

  /** Polls the flag until the session stops. */
  async run(): Promise<void> {
    while (!this.ctx.stopSignal.aborted) {
      if (this.ctx.lease.isValid()) {
        try {
          await this.check();
        } catch (error) {
          redisFailed(this.ctx, 'commands', error, 'reading the pause flag failed; retrying');
        }
      }
      await sleep(this.watch.pollMs, this.ctx.stopSignal);
    }
  }
}
