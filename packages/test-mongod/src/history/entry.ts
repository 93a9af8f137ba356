// One change-history entry: the equivalent of an oplog entry. Entries are immutable once
// appended; documents they reference are shared with storage (which never mutates in place).
import type { Binary, Long } from 'bson';
import type { Doc } from '../bson/types.js';
import type { UpdateDescription } from '../update/apply.js';
import type { Ts } from './clock.js';

export type EntryOp =
  | 'insert'
  | 'update'
  | 'replace'
  | 'delete'
  | 'create'
  | 'drop'
  | 'rename'
  | 'dropDatabase'
  | 'createIndexes'
  | 'dropIndexes'
  | 'modify'
  | 'noop';

export interface HistoryEntry {
  ts: Ts;
  /** Position among entries sharing `ts` (operations of one transaction). */
  txnOpIndex: number;
  wall: Date;
  op: EntryOp;
  db: string;
  coll?: string;
  uuid?: Binary;
  /** `_id` of the document for CRUD entries. */
  id?: unknown;
  /**
   * CRUD entries of a sharded collection (mongos mode): the document's shard key fields at
   * write time, in the shard key's order, which documentKey shows before `_id`.
   */
  key?: Doc;
  /** insert/replace: the new document; update: the post-image (always kept, needed to replay). */
  doc?: Doc;
  /** Pre-image, recorded only when the collection had changeStreamPreAndPostImages enabled. */
  pre?: Doc;
  /** Whether changeStreamPreAndPostImages was enabled on the collection at write time. */
  images?: boolean;
  desc?: UpdateDescription;
  to?: { db: string; coll: string };
  toUuid?: Binary;
  dropTargetUuid?: Binary;
  /** Collection options for create; the collMod description for modify; index specs. */
  info?: Doc;
  lsid?: Doc;
  txnNumber?: Long;
  /** Cached BSON of the default-shaped change event (see changestream/event.ts). */
  bytes?: Buffer;
}
