/**
 * Type test of typed handlers, checked by `npm run typecheck` (tsc): every line here compiles,
 * and each `@ts-expect-error` proves a rejection (tsc fails on one that no longer finds an error).
 */
import { defineHandlers, handlersFor, type EventOf } from '../../src/handler-api.js';

interface Order {
  _id: string;
  total: number;
  customerId: string;
}
interface Customer {
  _id: number;
  name: string;
}
interface Shop {
  'shop.orders': Order;
  'shop.customers': Customer;
}

// A handler written for one collection's type fits a plain table.
const onOrder = (event: EventOf<'insert', Order>): number => event.fullDocument.total;
export const plain = defineHandlers({ 'shop.orders': { insert: onOrder } });

// Declared once, each namespace's handlers see their documents.
export const typed = handlersFor<Shop>()({
  'shop.orders': {
    insert: (event) => event.fullDocument.total.toFixed(2),
    replace: (event) => event.fullDocument.customerId.toUpperCase(),
    update: (event) => {
      const total: number | undefined = event.updateDescription.updatedFields?.total;
      const before: Order | undefined = event.fullDocumentBeforeChange;
      const after: Order | undefined = event.fullDocument;
      return [total, before?.customerId, after?._id];
    },
    delete: (event) => event.fullDocumentBeforeChange?.total,
    '*': (event) => event.operationType,
  },
  'shop.customers': { insert: (event) => event.fullDocument.name.length },
  // Namespaces not declared take any document.
  'shop.audit': { insert: (event) => event.fullDocument['whatever'] },
});

export const rejected = handlersFor<Shop>()({
  'shop.orders': {
    // @ts-expect-error an Order has no field `nope`
    insert: (event) => event.fullDocument.nope,
    // @ts-expect-error `total` is a number
    replace: (event) => event.fullDocument.total.toUpperCase(),
    // @ts-expect-error a delete event carries no fullDocument
    delete: (event) => event.fullDocument,
  },
  'shop.customers': {
    // @ts-expect-error the customers' documents are Customers, not Orders
    insert: (event: EventOf<'insert', Order>) => event.fullDocument.total,
  },
});
