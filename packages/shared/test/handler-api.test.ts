import { describe, expect, it } from 'vitest';
import { handlersFor } from '../src/handler-api.js';

interface Order {
  _id: string;
  total: number;
}

describe('handlersFor', () => {
  it('returns the table itself, checked like defineHandlers', () => {
    const table = { 'shop.orders': { insert: () => 'ok' } };
    expect(handlersFor<{ 'shop.orders': Order }>()(table)).toBe(table);
    expect(() => handlersFor<{ 'shop.orders': Order }>()({ shop: { insert: () => 'ok' } })).toThrow(
      /handler table key "shop" is not a namespace/,
    );
    expect(() =>
      // A plain JavaScript module gets no compiler: the same check runs.
      handlersFor<{ 'shop.orders': Order }>()({ 'shop.orders': { inserts: () => 'ok' } } as never),
    ).toThrow(/inserts/);
  });
});
