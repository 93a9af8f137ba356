/**
 * The ring the ingest routes by, and its changes. A ring change (names added to or removed from
 * workers.toml: on SIGHUP, by the file watch, or at a start with a changed file) happens between
 * two batches, after everything read so far is committed and the resume token stored at P:
 *
 * 1. every queue that loses documents gets a handoff marker job (id `handoff-<e+1>`, position
 *    P + "!", which sorts after P and before every later token) through the exactly-once commit
 *    path; an empty queue's handoff is marked done at once instead, so a queue whose worker never
 *    ran holds nobody;
 * 2. the new epoch {e+1, names, from: P} is stored (compare-and-set);
 * 3. the reader routes events after P by it; a moved document's events carry a hold on its old
 *    owner's checkpoint.
 *
 * A crash anywhere in 1–3 leaves the token at P: on restart the markers are skipped by the
 * watermarks, and the change is redone unless its epoch was stored. Never a silent re-route.
 */
import { losingNames, ringDiff, sameNames, tokenData, type Logger } from '@changeq/shared';
import {
  HANDOFF_JOB_NAME,
  describePosition,
  eventQueueName,
  handoffJobId,
  nextEpoch,
  type StoredEpoch,
  type StoredPosition,
} from '@changeq/store';
import type { ChangeReader, EnqueuerPort, FaultPoint, RingPort } from './ports.js';
import { compareTokenData } from '@changeq/shared';

export interface RingPorts {
  ring: RingPort;
  enqueuer: Pick<EnqueuerPort, 'commit' | 'ensureQueues' | 'unfinishedCount' | 'highestWatermark'>;
  reader: Pick<ChangeReader, 'setRing'>;
  faults: (point: FaultPoint) => void;
  now: () => number;
}

/** What a handoff marker job carries (the worker's checkpoint task). */
export interface HandoffData {
  kind: 'handoff';
  epoch: number;
}

/** A position that sorts right after `position` and before any later resume token's `_data`. */
export function markerPosition(position: string): string {
  // Hex digits and letters all sort after "!", so a longer token that starts with P sorts after.
  return `${position}!`;
}

export class RingKeeper {
  private epochs: StoredEpoch[] | null = null;
  /** Names to switch to at the next batch boundary, and what asked for it. */
  private wanted: { names: readonly string[]; why: string } | null = null;
  private deferredLogged = false;

  constructor(
    private readonly ports: RingPorts,
    private readonly log: Logger,
  ) {}

  get current(): StoredEpoch | null {
    return this.epochs?.[this.epochs.length - 1] ?? null;
  }

  /** Every name of any stored epoch, in the order they first appeared. */
  get everyName(): string[] {
    return [...new Set((this.epochs ?? []).flatMap((epoch) => epoch.names))];
  }

  /**
   * Reads the stored ring (at every start and after a Redis failure): none → epoch 1 of the
   * file's names; different names than the file → a ring change, made at the first batch
   * boundary. `fileNames`: the latest good workers.toml.
   */
  async load(fileNames: readonly string[], why = 'workers.toml at start'): Promise<void> {
    let epochs = await this.ports.ring.load();
    if (epochs === null) {
      epochs = nextEpoch([], fileNames, '', new Date(this.ports.now()));
      await this.ports.ring.save(epochs);
      this.log.info({ epoch: 1, names: fileNames }, 'ring stored: epoch 1 from workers.toml');
    }
    this.epochs = epochs;
    await this.ports.enqueuer.ensureQueues(this.everyName.map(eventQueueName));
    await this.ports.reader.setRing(epochs);
    this.wanted = null;
    this.request(fileNames, why);
  }

  /** Asks for a ring of `names` (SIGHUP, the file watch); nothing when they are the ring's. */
  request(names: readonly string[], why: string): void {
    const current = this.current;
    if (current === null) return; // load() compares them once the ring is read
    if (sameNames(current.names, names)) {
      if (this.wanted !== null)
        this.log.info({ why }, "ring change withdrawn: the names are the ring's again");
      this.wanted = null;
      return;
    }
    if (this.wanted !== null && sameNames(this.wanted.names, names)) return;
    const { added, removed } = ringDiff(current.names, names);
    this.log.info(
      { why, epoch: current.epoch, names, added, removed },
      'worker names changed: switching the ring at the next batch boundary',
    );
    this.wanted = { names: [...names], why };
    this.deferredLogged = false;
  }

  /** Whether a change waits and can be made after the stored position `position`. */
  ready(position: StoredPosition | null): boolean {
    if (this.wanted === null || this.current === null) return false;
    const at = position && tokenData(position.token);
    // The switch position must lie after the current epoch's, or the epoch between would route
    // nothing and the holds (computed against it) would name the wrong old owners. It must also
    // lie at or after every job already in a queue: after a crash between a commit and its token
    // save (a start with a changed file), the events up to the highest watermark were enqueued by
    // the old names, and routing them again by the new ones would enqueue them twice (and put
    // the handoff marker below its queue's watermark, where it is skipped).
    const enqueued = this.ports.enqueuer.highestWatermark('stream');
    if (
      at &&
      compareTokenData(at, this.current.from) > 0 &&
      (enqueued === null || compareTokenData(at, enqueued) >= 0)
    ) {
      return true;
    }
    if (!this.deferredLogged) {
      this.log.info('ring change deferred until the stream stores a newer position');
      this.deferredLogged = true;
    }
    return false;
  }

  /**
   * Makes the requested change at `position` (all read so far committed, the token stored
   * there, the stream closed). The caller reopens the stream after `position`.
   */
  async apply(position: StoredPosition, since = performance.now()): Promise<void> {
    const wanted = this.wanted;
    const epochs = this.epochs;
    const current = this.current;
    const at = tokenData(position.token);
    if (!wanted || !epochs || !current || at === null) return;
    const epoch = current.epoch + 1;
    const names = wanted.names;
    await this.ports.enqueuer.ensureQueues(names.map(eventQueueName));
    const losing = losingNames(current.names, names);
    const data: HandoffData = { kind: 'handoff', epoch };
    const markers = [];
    for (const worker of losing) {
      const queue = eventQueueName(worker);
      // The ingest is the queue's only producer and is between batches: an empty queue has
      // nothing to hand off (and a worker that never ran must not hold anyone).
      if ((await this.ports.enqueuer.unfinishedCount(queue)) === 0) {
        await this.ports.ring.markHandoff(worker, epoch);
        continue;
      }
      markers.push({
        queue,
        name: HANDOFF_JOB_NAME,
        jobId: handoffJobId(epoch),
        json: JSON.stringify(data),
        position: markerPosition(at),
      });
    }
    await this.ports.enqueuer.commit(markers, 'stream');
    this.ports.faults('ring-after-markers');
    const next = nextEpoch(epochs, names, at, new Date(this.ports.now()));
    await this.ports.ring.save(next);
    this.ports.faults('ring-after-record');
    this.epochs = next;
    this.wanted = null;
    await this.ports.reader.setRing(next);
    const { added, removed } = ringDiff(current.names, names);
    this.log.info(
      {
        why: wanted.why,
        epoch,
        names,
        added,
        removed,
        handoffs: losing,
        markers: markers.map((m) => m.queue),
        from: describePosition(position),
        // From the batch boundary (read-ahead dropped, stream closed) to the new ring in place.
        tookMs: Math.round(performance.now() - since),
      },
      'ring changed: events after the stored position are routed by the new names; moved documents wait for their old owners',
    );
  }
}
