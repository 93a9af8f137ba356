// What every command handler receives, and the handler registry type.
import type { ScramServer } from '../auth/scram.js';
import type { UserRole } from '../auth/users.js';
import type { Doc } from '../bson/types.js';
import type { Ts } from '../history/clock.js';
import type { DataView, Transaction } from '../storage/view.js';
import type { ServerState } from '../state.js';

export interface Connection {
  id: number;
  remote: string;
  appName: string | undefined;
  closed: boolean;
  auth: ConnectionAuth;
  /** Close the socket without a reply (fail points, shutdown). */
  destroy(): void;
  onClose(fn: () => void): () => void;
}

/** Who a connection authenticated as, and a SASL conversation in progress. */
export interface ConnectionAuth {
  /** MongoDB allows one authenticated user per connection. */
  user?: { user: string; db: string; roles: UserRole[] };
  sasl?: {
    id: number;
    db: string;
    server: ScramServer;
    skipEmptyExchange: boolean;
    speculative: boolean;
  };
}

export interface CommandContext {
  state: ServerState;
  conn: Connection;
  db: string;
  name: string;
  cmd: Doc;
  view: DataView;
  txn: Transaction | undefined;
  /** Session id key (hex of lsid.id) if the command carried a session. */
  sessionKey: string | undefined;
  /** Cluster time of the last write this command made, for operationTime. */
  operationTime?: Ts;
}

export type Handler = (ctx: CommandContext) => Doc | Promise<Doc>;

export interface CommandSpec {
  handler: Handler;
  /** Writes need a writable primary. */
  write?: boolean;
  /** Must be run against the admin database. */
  adminOnly?: boolean;
  /** Allowed inside a multi-document transaction. */
  inTxn?: boolean;
}
