/**
 * Waits until every expected job had a successful handler call, reading the call record as it
 * grows. A process of the system that exited by itself fails the wait at once (with its last
 * output), and so does the timeout (with a few of the jobs still missing).
 */
import {
  checkDeliveries,
  type CallLog,
  type DeliveryReport,
  type ExpectedJob,
} from './deliveries.js';
import type { Supervised } from './supervised.js';

export async function waitForDeliveries(
  expected: readonly ExpectedJob[],
  log: CallLog,
  processes: readonly Pick<Supervised, 'name' | 'ownExits'>[],
  timeoutMs: number,
  pollMs = 300,
): Promise<DeliveryReport> {
  const deadline = Date.now() + timeoutMs;
  let report = checkDeliveries(expected, log.calls);
  while (report.lost.length > 0) {
    const died = processes.flatMap((p) => p.ownExits.map((exit) => `${p.name}: ${exit.tail}`));
    if (died.length > 0) throw new Error(`a process exited on its own:\n${died.join('\n')}`);
    if (Date.now() > deadline) {
      const some = report.lost.slice(0, 3).map((job) => [job.worker, job.position, job.doc]);
      throw new Error(
        `${report.lost.length} of ${expected.length} events never reached a handler, e.g. ${JSON.stringify(some)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    log.read();
    report = checkDeliveries(expected, log.calls);
  }
  return report;
}
