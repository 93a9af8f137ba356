/**
 * What a lease key holds (`workerKeys().lease`): who holds the lease, as JSON. The holder sends
 * its description; the acquire script (lua/acquireLease-2.lua) writes it with the fencing number
 * of the acquisition put first, so that the stored value is unique to that acquisition.
 */

/** What the lease value says about its holder (`changeq status` lists processes from it). */
export interface LeaseHolder {
  fence: number;
  owner: string;
  /** The worker name the lease is for (worker leases). */
  worker?: string;
  pid: number;
  host: string;
  startedAt: string;
}

/** The holder's description as sent to the acquire script: a JSON object, without `fence`. */
export function encodeLeaseRequest(holder: Omit<LeaseHolder, 'fence'>): string {
  return JSON.stringify(holder);
}

/** The holder a stored lease value names; undefined when there is none or it is not ours. */
export function parseLeaseValue(value: string | null): LeaseHolder | undefined {
  if (value === null) return undefined;
  try {
    return JSON.parse(value) as LeaseHolder;
  } catch {
    return undefined;
  }
}
