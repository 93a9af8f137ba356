/**
 * The contract between changeq's worker and the job handlers users write.
 *
 * A handlers module's default export is either one function that receives every event of its
 * worker, or a table made with `defineHandlers` keyed by namespace and then by operation type:
 *
 * ```ts
 * import { defineHandlers } from '@changeq/shared';
 *
 * export default defineHandlers({
 *   'shop.orders': {
 *     insert: async (event, ctx) => { event.fullDocument; ctx.idempotencyKey; },
 *     delete: async (event) => { event.documentKey; },
 *   },
 *   'shop.*': { drop: async (event) => { event.ns.coll; } },
 *   '*': { '*': async (event, ctx) => ctx.log.debug({ op: event.operationType }, 'ignored') },
 * });
 * ```
 *
 * The most specific match wins: the exact namespace before `db.*` before `*`, and within one
 * namespace the operation type before `'*'`. An event that matches nothing completes as a no-op.
 */
import type { Document } from 'mongodb';
import type { Logger } from 'pino';
import type { ChangeEvent, OperationType } from './change-event.js';
import type { TransactionMark } from './codec.js';

export type { Logger as HandlerLogger } from 'pino';

/** What a handler learns about the job it is running, besides the event itself. */
export interface HandlerContext {
  /** 1 on the first call for this event, 2 on the first retry, and so on (survives restarts). */
  readonly attempt: number;
  /** The worker name (from workers.toml) running the handler. */
  readonly worker: string;
  /**
   * Unique per event and the same on every attempt and every redelivery (it is the job id, derived
   * from the event's resume token): use it to make side effects idempotent.
   */
  readonly idempotencyKey: string;
  /** The BullMQ job id (equal to `idempotencyKey`; kept separate so logs can say which is meant). */
  readonly jobId: string;
  /** A pino child logger bound to this job (worker, jobId, ns, op, attempt). */
  readonly log: Logger;
  /**
   * Aborted when the attempt times out (`timeout_ms`) or the worker shuts down: stop work and
   * reject. After a shutdown abort the job stays queued and runs again in the next process.
   */
  readonly signal: AbortSignal;
  /**
   * Set when the event is one of a multi-document transaction's: the transaction's id (its
   * `lsid` and `txnNumber`), this event's index in it (from 0) and how many events it has, as
   * the change stream showed them. Its events may run on several workers, each in its own
   * document's order; `count` tells a handler when it has seen them all. `index` and `count` are
   * null in a transaction of more than 10,000 events past a batch's end (enqueued in parts).
   */
  readonly transaction?: TransactionMark;
}

/** The event type of one operation, so that `insert` handlers see `fullDocument` and so on. */
export type EventOf<Op extends OperationType, TSchema extends Document = Document> = Extract<
  ChangeEvent<TSchema>,
  { operationType: Op }
>;

/** One handler call. The return value is recorded as the job's return value when it is JSON. */
export type EventHandler<E = ChangeEvent> = (event: E, ctx: HandlerContext) => unknown;

/** Handlers of one namespace, keyed by operation type; `'*'` takes the other operations. */
export type OperationHandlers<TSchema extends Document = Document> = {
  [Op in OperationType]?: EventHandler<EventOf<Op, TSchema>>;
} & { '*'?: EventHandler<ChangeEvent<TSchema>> };

/**
 * Keys are `"db.coll"`, `"db.*"` or `"*"`. The document type is left open (`any`) so that a
 * handler written for one collection's type (`(event: EventOf<'insert', Order>) => …`) fits.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export type HandlerTableSpec = Record<string, OperationHandlers<any>>;

/** The document type of each namespace, e.g. `{ 'shop.orders': Order }`. */
export type NamespaceSchemas<S> = { [K in keyof S]: Document };

/** A table whose namespaces named in `S` get handlers typed for their documents. */
export type TypedHandlerTable<S, T> = {
  [K in keyof T]: K extends keyof S
    ? S[K] extends Document
      ? OperationHandlers<S[K]>
      : never
    : OperationHandlers;
};

/** A handler table (made with `defineHandlers`, or a plain object of the same shape). */
export type HandlerTable = HandlerTableSpec;

/** What a handlers module may export as its default export. */
export type HandlersExport = EventHandler | HandlerTable;

/** The operation keys a handler table accepts (besides `'*'`). */
export const HANDLER_OPERATIONS: readonly OperationType[] = [
  'insert',
  'update',
  'replace',
  'delete',
  'drop',
  'rename',
  'dropDatabase',
  'invalidate',
  'createIndexes',
  'dropIndexes',
  'create',
  'modify',
  'shardCollection',
  'reshardCollection',
  'refineCollectionShardKey',
  'snapshot',
];

const NAMESPACE_KEY = /^(\*|[^.*\s$][^*\s]*\.\*|[^.*\s$][^*\s]*\.[^*\s]+)$/;

/**
 * Checks a handler table and returns it unchanged, typed so that each handler sees the event type
 * of its operation. Throws a TypeError naming the bad key (a typo such as `inserts` or `shop` must
 * not silently turn into a no-op).
 */
export function defineHandlers<T extends HandlerTableSpec>(table: T): T & HandlerTable {
  validateHandlerTable(table);
  return table;
}

/**
 * `defineHandlers` with each namespace's document type declared once, so that its handlers see
 * typed `fullDocument`, `fullDocumentBeforeChange` and `updateDescription`:
 *
 * ```ts
 * export default handlersFor<{ 'shop.orders': Order }>()({
 *   'shop.orders': { insert: (event) => event.fullDocument.total },
 * });
 * ```
 *
 * (Two calls, because TypeScript cannot take one type argument and infer the other.) The types
 * are a promise the handlers' author makes about the collection; nothing checks documents at run
 * time.
 */
export function handlersFor<S extends NamespaceSchemas<S>>(): <T extends TypedHandlerTable<S, T>>(
  table: T,
) => T & HandlerTable {
  return (table) => defineHandlers(table as HandlerTableSpec) as typeof table & HandlerTable;
}

/** The check behind `defineHandlers`; the worker also runs it on tables made without it. */
export function validateHandlerTable(table: unknown): asserts table is HandlerTable {
  if (typeof table !== 'object' || table === null || Array.isArray(table)) {
    throw new TypeError('a handler table must be an object keyed by namespace');
  }
  const operations = new Set<string>([...HANDLER_OPERATIONS, '*']);
  for (const [namespace, handlers] of Object.entries(table)) {
    if (!NAMESPACE_KEY.test(namespace)) {
      throw new TypeError(
        `handler table key "${namespace}" is not a namespace: use "db.coll", "db.*" or "*"`,
      );
    }
    if (typeof handlers !== 'object' || handlers === null || Array.isArray(handlers)) {
      throw new TypeError(
        `handler table entry "${namespace}" must be an object keyed by operation type`,
      );
    }
    for (const [op, handler] of Object.entries(handlers as Record<string, unknown>)) {
      if (!operations.has(op)) {
        throw new TypeError(
          `handler table entry "${namespace}" has unknown operation "${op}": use one of ${[...operations].join(', ')}`,
        );
      }
      if (typeof handler !== 'function') {
        throw new TypeError(`handler "${namespace}" → "${op}" is not a function`);
      }
    }
  }
}
