// Logical sessions and multi-document transactions (see the manual's "Transactions" pages and
// the driver Transactions spec): startTransaction/autocommit/txnNumber on the first statement,
// commitTransaction and abortTransaction. Writes and their change events become visible only at
// commit, all sharing one cluster time.
import type { Long } from 'bson';
import { isPlainObject } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { MongoServerError } from '../errors.js';
import type { SessionState } from '../state.js';
import type { ServerState } from '../state.js';
import { Transaction } from '../storage/view.js';
import type { CommandContext, CommandSpec } from './context.js';

export function sessionKeyOf(lsid: unknown): string | undefined {
  if (!isPlainObject(lsid)) return undefined;
  const id = lsid.id as { buffer?: Uint8Array; toString?: (enc: string) => string } | undefined;
  if (!id?.buffer) return undefined;
  return Buffer.from(id.buffer).toString('hex');
}

function noSuchTransaction(txnNumber: Long, active?: Long): MongoServerError {
  return new MongoServerError(
    251,
    `Given transaction number ${txnNumber.toString()} does not match any in-progress transactions.${active ? ` The active transaction number is ${active.toString()}` : ''}`,
    { labels: ['TransientTransactionError'] },
  );
}

/**
 * Resolve the transaction a command runs in, starting one when asked. Returns undefined for
 * commands outside a transaction.
 */
export function resolveTransaction(
  state: ServerState,
  session: SessionState,
  cmd: Doc,
  name: string,
): Transaction | undefined {
  const txnNumber = cmd.txnNumber as Long | undefined;
  if (txnNumber === undefined || cmd.autocommit === undefined) {
    if (txnNumber !== undefined) {
      // A retryable write: a newer txnNumber ends any transaction still open on the session.
      if (session.txnNumber && txnNumber.lessThan(session.txnNumber)) {
        throw new MongoServerError(
          225,
          `Retryable write with txnNumber ${txnNumber.toString()} is prohibited on session because a newer retryable write with txnNumber ${session.txnNumber.toString()} has already started on this session.`,
          { codeName: 'TransactionTooOld' },
        );
      }
      if (session.txn?.state === 'inProgress' && !txnNumber.equals(session.txnNumber as Long)) {
        session.txn.state = 'aborted';
      }
      session.txnNumber = txnNumber;
    }
    return undefined;
  }
  if (cmd.autocommit !== false)
    throw new MongoServerError(72, "'autocommit' field can only be specified as false", {
      codeName: 'InvalidOptions',
    });
  if (session.txnNumber && txnNumber.lessThan(session.txnNumber)) {
    throw new MongoServerError(
      225,
      `txnNumber ${txnNumber.toString()} is less than last txnNumber ${session.txnNumber.toString()} seen in session`,
      { codeName: 'TransactionTooOld' },
    );
  }
  if (cmd.startTransaction === true) {
    if (session.txnNumber && txnNumber.equals(session.txnNumber) && session.txn) {
      throw new MongoServerError(
        251,
        `Transaction with txnNumber ${txnNumber.toString()} has already been started`,
        { codeName: 'ConflictingOperationInProgress' },
      );
    }
    if (session.txn?.state === 'inProgress') session.txn.state = 'aborted';
    session.txnNumber = txnNumber;
    session.txn = new Transaction(state.engine, session.lsid, txnNumber);
    session.lastOutcome = undefined;
    return session.txn;
  }
  const txn = session.txn;
  if (!txn || !session.txnNumber || !txnNumber.equals(session.txnNumber)) {
    throw noSuchTransaction(txnNumber, session.txnNumber);
  }
  if (txn.state === 'inProgress') return txn;
  if (name === 'commitTransaction' || name === 'abortTransaction') return txn;
  throw noSuchTransaction(txnNumber);
}

function commitTransaction(ctx: CommandContext): Doc {
  const txn = ctx.txn;
  if (!txn)
    throw new MongoServerError(251, 'commitTransaction must be run within a transaction', {
      labels: ['TransientTransactionError'],
    });
  if (txn.state === 'committed') return { ok: 1 };
  if (txn.state === 'aborted') throw noSuchTransaction(txn.txnNumber);
  try {
    txn.commit();
  } catch (err) {
    txn.state = 'aborted';
    throw err;
  }
  return { ok: 1 };
}

function abortTransaction(ctx: CommandContext): Doc {
  const txn = ctx.txn;
  if (!txn)
    throw new MongoServerError(251, 'abortTransaction must be run within a transaction', {
      labels: ['TransientTransactionError'],
    });
  if (txn.state === 'committed')
    throw new MongoServerError(256, 'Transaction has been committed.', {
      codeName: 'TransactionCommitted',
    });
  if (txn.state === 'aborted') throw noSuchTransaction(txn.txnNumber);
  txn.state = 'aborted';
  return { ok: 1 };
}

function endSessions(ctx: CommandContext): Doc {
  const ids = ctx.cmd[ctx.name];
  if (Array.isArray(ids)) {
    for (const lsid of ids) {
      const key = sessionKeyOf(lsid);
      if (!key) continue;
      const s = ctx.state.sessions.get(key);
      if (s?.txn?.state === 'inProgress') s.txn.state = 'aborted';
      ctx.state.sessions.delete(key);
      if (ctx.name === 'killSessions') ctx.state.cursors.killSession(key);
    }
  }
  return { ok: 1 };
}

function killAllSessions(ctx: CommandContext): Doc {
  for (const [key, s] of ctx.state.sessions) {
    if (s.txn?.state === 'inProgress') s.txn.state = 'aborted';
    ctx.state.cursors.killSession(key);
  }
  ctx.state.sessions.clear();
  return { ok: 1 };
}

export const sessionCommands: Record<string, CommandSpec> = {
  commitTransaction: { handler: commitTransaction, adminOnly: true, inTxn: true, write: true },
  abortTransaction: { handler: abortTransaction, adminOnly: true, inTxn: true, write: true },
  endSessions: { handler: endSessions },
  killSessions: { handler: endSessions },
  killAllSessions: { handler: killAllSessions },
  refreshSessions: { handler: () => ({ ok: 1 }) },
};
