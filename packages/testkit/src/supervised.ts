import { startApp, type App } from './entry-points.js';
import { endProcesses, type Exit, type TestProcess } from './processes.js';

/** How one process of a supervised app ended. */
export interface SupervisedExit extends Exit {
  pid: number;
  /** Date.now() when its exit was seen. */
  at: number;
  /** The end of its output (for the exits that were not ours). */
  tail: string;
}

export interface SupervisedOptions {
  /**
   * `signal` (default): start it again after it was killed by a signal (as a crash would), but
   * not after it exited by itself with a code: that is an outcome to look at, not to paper over.
   * `any`: start it again after every exit.
   */
  restart?: 'signal' | 'any';
}

/**
 * A process of the system that is started again whenever it is killed, until stopped: what a
 * supervisor (systemd, Kubernetes) does in production, so fault tests can kill it at will.
 */
export class Supervised {
  current: TestProcess;
  /** Processes started after the first one. */
  restarts = 0;
  readonly exits: SupervisedExit[] = [];
  private stopped = false;
  private readonly started: TestProcess[] = [];

  constructor(
    readonly name: string,
    private readonly app: App,
    private readonly args: readonly string[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly options: SupervisedOptions = {},
  ) {
    this.current = this.spawn();
  }

  private spawn(): TestProcess {
    const run = startApp(this.app, this.args, this.env);
    this.started.push(run);
    void run.exited.then(({ code, signal }) => {
      this.exits.push({
        pid: run.pid,
        code,
        signal,
        at: Date.now(),
        tail: run.output().slice(-4000),
      });
      if (this.stopped) return;
      if (signal === null && (this.options.restart ?? 'signal') === 'signal') return;
      this.restarts += 1;
      this.current = this.spawn();
    });
    return run;
  }

  /** Every process started so far, the current one last. */
  get processes(): readonly TestProcess[] {
    return this.started;
  }

  /** The exits that were not caused by a signal (the process ended by itself). */
  get ownExits(): SupervisedExit[] {
    return this.exits.filter((exit) => exit.signal === null);
  }

  /** Sends `signal` to the current process (by PID), e.g. SIGKILL, SIGSTOP or SIGCONT. */
  signal(signal: NodeJS.Signals): void {
    const pid = this.current.pid;
    if (this.current.child.exitCode === null && this.current.child.signalCode === null) {
      process.kill(pid, signal);
    }
  }

  /** SIGKILL of the current process; resolves once it is gone (its successor may be starting). */
  async kill(): Promise<void> {
    await this.current.kill('SIGKILL');
  }

  /** Ends every process it started (SIGKILL, by PID) and starts no more. */
  async stop(): Promise<void> {
    this.stopped = true;
    await endProcesses(this.started);
  }
}
