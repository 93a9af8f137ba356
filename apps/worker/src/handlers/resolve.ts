import type { ChangeEvent, EventHandler, HandlerTable } from '@changeq/shared';

/** The namespace of an event as `db` and `coll` (coll is undefined for database-wide events). */
export function eventNamespace(event: ChangeEvent): { db: string; coll: string | undefined } {
  const ns = (event as { ns?: { db?: unknown; coll?: unknown } }).ns;
  const db = typeof ns?.db === 'string' ? ns.db : '';
  const coll = typeof ns?.coll === 'string' ? ns.coll : undefined;
  return { db, coll };
}

/**
 * The handler of a table for one event: the exact namespace before `db.*` before `*`, and within
 * one namespace key the operation type before `'*'`. Undefined when nothing matches.
 */
export function resolveHandler(
  table: HandlerTable,
  event: ChangeEvent,
): { handler: EventHandler; key: string; op: string } | undefined {
  const { db, coll } = eventNamespace(event);
  const op = event.operationType;
  const keys = [coll === undefined ? undefined : `${db}.${coll}`, `${db}.*`, '*'];
  for (const key of keys) {
    if (key === undefined) continue;
    const handlers = table[key] as Record<string, EventHandler | undefined> | undefined;
    if (handlers === undefined) continue;
    const exact = handlers[op];
    if (exact !== undefined) return { handler: exact, key, op };
    const any = handlers['*'];
    if (any !== undefined) return { handler: any, key, op: '*' };
  }
  return undefined;
}
