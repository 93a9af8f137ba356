import { BSON, EJSON } from 'bson';
import type { Document } from 'bson';
import type { ChangeEvent } from './change-event.js';

/** Bump when the job payload changes shape; workers refuse versions they do not know. */
export const EVENT_JOB_VERSION = 1;

/** The data of one BullMQ job: one change event and what the worker needs to order it. */
export interface EventJobData {
  v: typeof EVENT_JOB_VERSION;
  /** `db.coll`, or `db` for database-wide events. */
  ns: string;
  /** The event's operationType. */
  op: string;
  /**
   * Identity of the document (see `documentIdentity`): events with the same value must run in
   * order. `null` for namespace-wide events (drop, rename, dropDatabase).
   */
  doc: string | null;
  /** The event as canonical Extended JSON, so every BSON type survives the trip through Redis. */
  event: Document;
}

/** Encodes a change event as it came from the driver into job data. */
export function encodeEvent(
  event: ChangeEvent | Document,
  route: { ns: string; op: string; doc: string | null },
): EventJobData {
  return {
    v: EVENT_JOB_VERSION,
    ns: route.ns,
    op: route.op,
    doc: route.doc,
    event: EJSON.serialize(event, { relaxed: false }) as Document,
  };
}

/**
 * Restores the event with the values the driver produced: canonical Extended JSON keeps the
 * exact BSON types, and a BSON round trip with the driver's default options (promoteLongs and
 * so on) turns them into the same JavaScript values the driver hands out.
 */
export function decodeEvent<T extends Document = Document>(data: EventJobData): ChangeEvent<T> {
  if (data.v !== EVENT_JOB_VERSION) {
    throw new Error(
      `job data version ${String(data.v)} is not supported by this worker (expects ${EVENT_JOB_VERSION})`,
    );
  }
  const typed = EJSON.deserialize(data.event, { relaxed: false }) as Document;
  return BSON.deserialize(BSON.serialize(typed)) as ChangeEvent<T>;
}
