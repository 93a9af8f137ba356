import type { ChangeStreamDocument, Document, Timestamp } from 'mongodb';

/** A document copied by a snapshot (initial sync or forced resync), delivered like a change event. */
export interface SnapshotEvent<TSchema extends Document = Document> {
  _id: { snapshot: string };
  operationType: 'snapshot';
  ns: { db: string; coll: string };
  documentKey: { _id: unknown };
  fullDocument: TSchema;
  /** The cluster time the copy started at; the change stream continues from it. */
  clusterTime: Timestamp;
}

/** What a handler receives: a change event exactly as the driver produced it, or a snapshot event. */
export type ChangeEvent<TSchema extends Document = Document> =
  ChangeStreamDocument<TSchema> | SnapshotEvent<TSchema>;

export type OperationType = ChangeEvent['operationType'];

/** Events that concern a whole namespace rather than one document. */
export const NAMESPACE_EVENTS: ReadonlySet<string> = new Set(['drop', 'rename', 'dropDatabase']);
