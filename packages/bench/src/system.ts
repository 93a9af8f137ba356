/**
 * What the machine and each process spent, read from /proc (by @changeq/processes, the one copy
 * of that accounting): CPU time per process (all its
 * threads), CPU time of the whole machine, and resident memory. Every figure of the bench carries
 * the CPU it cost per process, because on 2 cores the servers' share decides the ceilings, and
 * "others" (the machine's CPU minus ours) says whether the figure can be trusted at all.
 */
import { cpus, loadavg } from 'node:os';
import { machineCpuMicros, mainThreadCpuMicros, processCpuMicros, rssMb } from '@changeq/processes';

export { rssMb };

/** Processes watched by name ("bench" is this process and is always watched). */
export type Watched = Record<string, number>;

export interface Sample {
  at: number;
  /** CPU µs used so far, per watched process name. */
  cpu: Record<string, number>;
  /** Of that, what each watched process's main thread used (its JavaScript). */
  mainThread: Record<string, number>;
  machine: number;
}

export function sample(watched: Watched): Sample {
  const cpu: Record<string, number> = {};
  const mainThread: Record<string, number> = {};
  for (const [name, pid] of Object.entries(watched)) {
    cpu[name] = processCpuMicros(pid);
    mainThread[name] = mainThreadCpuMicros(pid);
  }
  const own = process.cpuUsage();
  cpu.bench = own.user + own.system;
  return { at: performance.now(), cpu, mainThread, machine: machineCpuMicros() };
}

/** What a stretch of time cost: wall time, CPU per process and of the machine. */
export interface Cost {
  ms: number;
  /** CPU µs per process during the stretch. */
  cpu: Record<string, number>;
  /**
   * Of that, what each process's main thread used: a Node process whose main thread is not busy
   * all the time waits (for replies or timers), whatever its other threads (V8's garbage
   * collector helpers, a worker thread) spend. Absent from runs saved before it was measured.
   */
  mainThread?: Record<string, number>;
  /** Cores the rest of the machine kept busy meanwhile (not ours): high means distrust. */
  othersCores: number;
}

export function costBetween(from: Sample, to: Sample): Cost {
  // A process missing from the first sample had not started yet: it counts from zero.
  const between = (a: Record<string, number>, b: Record<string, number>) =>
    Object.fromEntries(Object.entries(b).map(([name, end]) => [name, end - (a[name] ?? 0)]));
  const cpu = between(from.cpu, to.cpu);
  const ms = to.at - from.at;
  const ours = Object.values(cpu).reduce((a, b) => a + b, 0);
  return {
    ms,
    cpu,
    mainThread: between(from.mainThread, to.mainThread),
    othersCores: Math.max(0, to.machine - from.machine - ours) / (ms * 1000),
  };
}

/** Cores a process kept busy on average during the stretch. */
export const coresOf = (cost: Cost, name: string): number =>
  (cost.cpu[name] ?? 0) / (cost.ms * 1000);

/**
 * Samples the RSS of the watched processes every `everyMs` until stopped; keeps each one's peak.
 * Sampling (not VmHWM) so that the peak belongs to the stretch measured, not to the process's life.
 */
export function rssPeaks(watched: Watched, everyMs = 50): { stop(): Record<string, number> } {
  const peaks: Record<string, number> = {};
  const tick = () => {
    for (const [name, pid] of Object.entries(watched)) {
      peaks[name] = Math.max(peaks[name] ?? 0, rssMb(pid));
    }
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return peaks;
    },
  };
}

export interface Machine {
  cores: number;
  cpuModel: string;
  node: string;
  /** 1-minute load average when the bench started and ended. */
  loadStart: number;
  loadEnd?: number;
}

export function describeMachine(): Machine {
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    loadStart: loadavg()[0] ?? 0,
  };
}
