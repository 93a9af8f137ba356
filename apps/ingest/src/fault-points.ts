/**
 * Crash points for the fault tests, off unless CHANGEQ_FAULT_POINTS is set, e.g.
 * `after-queue-commit=0.05,before-token-save=0.1`: at each named point the process kills itself
 * with SIGKILL with that probability. Random external kills rarely land in the few milliseconds
 * between a queue's transaction and the token write; these points make the tests hit exactly
 * the windows where a lost or doubled event would come from.
 */
import type { FaultPoint } from './ports.js';

function parse(spec: string | undefined): Map<string, number> {
  const points = new Map<string, number>();
  for (const part of (spec ?? '').split(',')) {
    const [name, probability] = part.split('=').map((s) => s.trim());
    if (name && probability !== undefined && Number.isFinite(Number(probability))) {
      points.set(name, Number(probability));
    }
  }
  return points;
}

const points = parse(process.env.CHANGEQ_FAULT_POINTS);

export function faultPoint(name: FaultPoint): void {
  const probability = points.get(name);
  if (probability !== undefined && Math.random() < probability)
    process.kill(process.pid, 'SIGKILL');
}
