import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  defineHandlers,
  isUserError,
  type ChangeEvent,
  type HandlerContext,
} from '@changeq/shared';
import { resolveHandler } from '../src/handlers/resolve.js';
import { dispatcherFor, loadHandlers } from '../src/handlers/load.js';

const ev = (operationType: string, db: string, coll?: string) =>
  ({ operationType, ns: coll === undefined ? { db } : { db, coll } }) as unknown as ChangeEvent;

describe('handler table resolution', () => {
  const tag = (name: string) => () => name;
  const table = defineHandlers({
    'shop.orders': { insert: tag('orders.insert'), '*': tag('orders.*') },
    'shop.*': {
      insert: tag('shop.*.insert'),
      drop: tag('shop.*.drop'),
      dropDatabase: tag('shop.*.dropDatabase'),
    },
    '*': { update: tag('*.update'), '*': tag('*.*') },
  });
  const which = (event: ChangeEvent) => {
    const found = resolveHandler(table, event);
    return found === undefined ? undefined : (found.handler(event, {} as HandlerContext) as string);
  };

  it('prefers the exact namespace, then db.*, then *; and within one the operation, then *', () => {
    expect(which(ev('insert', 'shop', 'orders'))).toBe('orders.insert');
    expect(which(ev('update', 'shop', 'orders'))).toBe('orders.*');
    expect(which(ev('insert', 'shop', 'users'))).toBe('shop.*.insert');
    expect(which(ev('drop', 'shop', 'users'))).toBe('shop.*.drop');
    expect(which(ev('update', 'shop', 'users'))).toBe('*.update');
    expect(which(ev('delete', 'crm', 'leads'))).toBe('*.*');
  });

  it('matches database-wide events by db.*', () => {
    expect(which(ev('dropDatabase', 'shop'))).toBe('shop.*.dropDatabase');
  });

  it('returns nothing when no key matches (the worker completes the event as a no-op)', () => {
    const narrow = defineHandlers({ 'shop.orders': { insert: tag('x') } });
    expect(resolveHandler(narrow, ev('delete', 'shop', 'orders'))).toBeUndefined();
    expect(dispatcherFor(narrow)(ev('delete', 'shop', 'orders'), {} as HandlerContext)).toEqual({
      matched: false,
    });
  });

  it('rejects typos in keys instead of silently ignoring events', () => {
    expect(() => defineHandlers({ shop: { insert: tag('x') } })).toThrow(/not a namespace/);
    expect(() => defineHandlers({ 'shop.orders': { inserts: tag('x') } as never })).toThrow(
      /unknown operation "inserts"/,
    );
    expect(() => defineHandlers({ 'shop.orders': { insert: 'nope' } as never })).toThrow(
      /not a function/,
    );
  });

  it('narrows the event type by operation (compile-time check)', () => {
    const typed = defineHandlers({
      'shop.orders': {
        insert: (event) => event.fullDocument,
        update: (event) => event.updateDescription.updatedFields,
        delete: (event) => event.documentKey,
      },
    });
    expect(Object.keys(typed['shop.orders']!)).toEqual(['insert', 'update', 'delete']);
  });
});

describe('loadHandlers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'changeq-handlers-'));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const problem = async (path: string) => {
    try {
      await loadHandlers(path);
    } catch (error) {
      expect(isUserError(error)).toBe(true);
      return (error as Error).message;
    }
    throw new Error('expected a UserError');
  };

  it('loads a function or a table, and exposes close()', async () => {
    const fn = await loadHandlers(file('fn.mjs', 'export default async (e) => e.operationType;'));
    expect(fn.dispatch(ev('insert', 'a', 'b'), {} as HandlerContext)).toMatchObject({
      matched: true,
    });
    const table = await loadHandlers(
      file(
        'table.mjs',
        `export default { 'a.b': { insert: () => 1 } };\nexport let closed = false;\nexport function close() { closed = true; }`,
      ),
    );
    await table.close();
    expect(table.dispatch(ev('delete', 'a', 'b'), {} as HandlerContext)).toEqual({
      matched: false,
    });
  });

  it('names the file and the problem when a module cannot be used', async () => {
    expect(await problem(join(dir, 'missing.mjs'))).toMatch(/missing\.mjs does not exist/);
    expect(await problem(file('syntax.mjs', 'export default {'))).toMatch(/could not be loaded/);
    expect(await problem(file('throws.mjs', 'throw new Error("no config");'))).toMatch(
      /could not be loaded: no config/,
    );
    expect(await problem(file('nodefault.mjs', 'export const x = 1;'))).toMatch(
      /no default export/,
    );
    expect(await problem(file('badkey.mjs', 'export default { shop: {} };'))).toMatch(
      /not a namespace/,
    );
  });
});
