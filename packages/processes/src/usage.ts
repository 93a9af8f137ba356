/**
 * What a process and the machine have spent so far, read from /proc (Linux): the one copy of the
 * CPU and memory accounting the benchmarks share.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The unit of /proc/<pid>/stat's CPU times (USER_HZ, normally 100 per second); read once. */
let clockTicks: number | undefined;
const ticksPerSecond = (): number =>
  (clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()));

/** CPU time a process (all its threads) has used so far, in µs; 0 once it is gone. */
export function processCpuMicros(pid: number): number {
  return statCpuMicros(`/proc/${pid}/stat`);
}

/**
 * CPU time of a process's main thread alone (its JavaScript, for Node), in µs; 0 once it is gone.
 * The rest of the process's CPU is its other threads': V8's garbage collector helpers, libuv's pool
 * and any worker threads.
 */
export function mainThreadCpuMicros(pid: number): number {
  return statCpuMicros(`/proc/${pid}/task/${pid}/stat`);
}

function statCpuMicros(path: string): number {
  let stat: string;
  try {
    stat = readFileSync(path, 'utf8');
  } catch {
    return 0;
  }
  // Field 2 is the command name in parentheses, which may itself hold spaces and ')'; the fields
  // after the last ')' start at field 3, so utime and stime (fields 14 and 15) are at 11 and 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / ticksPerSecond();
}

/** CPU time the whole machine (all cores) has used so far, in µs, from /proc/stat. */
export function machineCpuMicros(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  // "cpu user nice system idle iowait irq softirq steal …": all but idle and iowait count, steal
  // included (time the hypervisor gave to another guest is time this machine could not use).
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = [0, 1, 2, 5, 6, 7].reduce((sum, i) => sum + (ticks[i] ?? 0), 0);
  return (busy * 1_000_000) / ticksPerSecond();
}

/** Resident memory of a process now, in MB (0 once it is gone). */
export function rssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}
