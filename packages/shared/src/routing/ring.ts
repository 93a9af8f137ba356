/**
 * Routing by epoch: the worker names change over time (a ring change adds or removes names), and
 * every change takes effect at a *position* of the change stream (a resume token's `_data`). An
 * event is routed by the latest epoch whose `from` sorts before the event's position, so routing
 * is a pure function of (ring history, event position): an event read again after a crash goes
 * to the same queue as before, and the per-queue watermarks keep re-enqueueing a no-op.
 *
 * An event whose document changed owner at its epoch carries a *hold*: the new owner runs it only
 * once the old owner has finished everything it held before the switch (its checkpoint for that
 * epoch). Documents that did not move carry nothing and never wait.
 */
import { compareTokenData } from '../resume-token.js';
import { Router, type DocumentKey } from './router.js';

/** One epoch of the ring: its names, from which position on they route. */
export interface RingEpoch {
  epoch: number;
  names: readonly string[];
  /** Events whose position sorts after this are routed by this epoch ('' for epoch 1: all). */
  from: string;
}

/**
 * What a job waits for on its new owner: the checkpoint of epoch `epoch` in each of `workers`
 * (the old owners), i.e. every job those workers held before the switch finished.
 */
export interface Hold {
  /** A ring epoch, or a routing-key change's id (`key-…`, see planEvent). */
  epoch: number | string;
  workers: string[];
}

/** Where an event goes and what it waits for. */
export interface Route {
  owner: string;
  hold: Hold | null;
}

/** Names of epoch `before` that lose documents when the ring becomes `after`. */
export function losingNames(before: readonly string[], after: readonly string[]): string[] {
  const next = new Set(after);
  const added = after.some((name) => !before.includes(name));
  // Rendezvous hashing: an added name takes documents from every old name; a removed name's
  // documents go to the others, and no other name loses any.
  return added ? [...before] : before.filter((name) => !next.has(name));
}

/** The names that are in one list and not the other. */
export function ringDiff(
  before: readonly string[],
  after: readonly string[],
): { added: string[]; removed: string[] } {
  return {
    added: after.filter((name) => !before.includes(name)),
    removed: before.filter((name) => !after.includes(name)),
  };
}

/** Whether two name lists hold the same names (order does not matter for routing). */
export function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && ringDiff(a, b).added.length === 0;
}

export class RingRouter {
  /** Epochs, oldest first. */
  readonly epochs: readonly RingEpoch[];
  private readonly routers: Router[];

  constructor(history: readonly RingEpoch[]) {
    if (history.length === 0) throw new RangeError('a ring history needs at least one epoch');
    const epochs = [...history].sort((a, b) => a.epoch - b.epoch);
    for (let i = 1; i < epochs.length; i++) {
      const previous = epochs[i - 1]!;
      const epoch = epochs[i]!;
      if (compareTokenData(epoch.from, previous.from) < 0) {
        throw new RangeError(
          `ring epoch ${epoch.epoch} starts at a position before epoch ${previous.epoch}'s`,
        );
      }
    }
    this.epochs = epochs;
    this.routers = epochs.map((epoch) => new Router(epoch.names));
  }

  /** The current (latest) epoch. */
  get current(): RingEpoch {
    return this.epochs[this.epochs.length - 1]!;
  }

  /** Index of the epoch that routes an event at `position`. */
  private indexAt(position: string): number {
    for (let i = this.epochs.length - 1; i > 0; i--) {
      if (compareTokenData(this.epochs[i]!.from, position) < 0) return i;
    }
    return 0;
  }

  /** The epoch that routes an event at `position` (the latest whose `from` sorts before it). */
  epochAt(position: string): RingEpoch {
    return this.epochs[this.indexAt(position)]!;
  }

  /** Owner of a document at `position`, and the hold when it moved at that epoch. */
  route(key: DocumentKey, position: string): Route {
    const index = this.indexAt(position);
    const owner = this.routers[index]!.routeKey(key);
    if (index === 0) return { owner, hold: null };
    const previous = this.routers[index - 1]!.routeKey(key);
    return {
      owner,
      hold: previous === owner ? null : { epoch: this.epochs[index]!.epoch, workers: [previous] },
    };
  }

  /**
   * Every name of the epoch at `position`, each with its hold: a namespace-wide event (a barrier
   * on every worker) must not run on a name before the documents it gained ran out on the names
   * that lost them.
   */
  routeAll(position: string): Route[] {
    const index = this.indexAt(position);
    const epoch = this.epochs[index]!;
    if (index === 0) return epoch.names.map((owner) => ({ owner, hold: null }));
    const before = this.epochs[index - 1]!.names;
    const removed = before.filter((name) => !epoch.names.includes(name));
    return epoch.names.map((owner) => {
      // An added name gains documents from every old name; a name that stays gains only the
      // documents of removed names (adding a name never gives an old name documents).
      const workers = before.includes(owner) ? removed : [...before];
      return { owner, hold: workers.length > 0 ? { epoch: epoch.epoch, workers } : null };
    });
  }
}
