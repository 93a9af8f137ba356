import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BSON } from 'mongodb';
import { describe, expect, it } from 'vitest';
import {
  documentKey,
  fieldValue,
  formatUserError,
  identityOf,
  lineKey,
  parseRoutingRule,
  parseWorkersConfig,
  Router,
  routingSpec,
  UserError,
} from '../src/index.js';

const { EJSON } = BSON;

interface Row {
  ns: string;
  rule: string;
  value: unknown;
  names: string[];
  worker: string;
  line: string;
}

describe('routing keys: golden vectors (a changed line breaks per-key order on upgrade)', () => {
  const file = join(
    dirname(fileURLToPath(import.meta.url)),
    'fixtures',
    'routing-keys-golden.json',
  );
  const rows = (JSON.parse(readFileSync(file, 'utf8')) as { rows: Row[] }).rows;

  it('covers field paths, documentKey fields, the namespace and missing values', () => {
    const rules = new Set(rows.map((row) => row.rule));
    for (const rule of [
      'fullDocument.customerId',
      'fullDocument.customer.id',
      'documentKey.region',
      'namespace',
    ]) {
      expect(rules).toContain(rule);
    }
    expect(rows.some((row) => row.value === null)).toBe(true);
  });

  it.each(
    rows.map((row) => [
      `${row.ns} ${row.rule} ${JSON.stringify(row.value)} ${row.names.length}`,
      row,
    ]),
  )('%s', (_, row) => {
    const value = EJSON.deserialize({ v: row.value }, { relaxed: false }).v as unknown;
    const key = lineKey(row.ns, parseRoutingRule(row.rule), value);
    expect(identityOf(key)).toBe(row.line);
    expect(new Router(row.names).routeKey(key)).toBe(row.worker);
  });

  it('numbers equal as BSON values share one line (42, Long 42, Decimal 42.0)', () => {
    const lines = rows.filter(
      (r) => r.rule === 'fullDocument.customerId' && /42/.test(JSON.stringify(r.value)),
    );
    expect(lines.length).toBe(6);
    expect(new Set(lines.map((r) => r.line)).size).toBe(1);
  });

  it('never equals a document key, nor a line of another namespace or field', () => {
    const rule = parseRoutingRule('fullDocument.customerId');
    expect(lineKey('shop.orders', rule, 'c-1').equals(documentKey('shop.orders', 'c-1'))).toBe(
      false,
    );
    expect(lineKey('shop.orders', rule, 'c-1').equals(lineKey('shop.payments', rule, 'c-1'))).toBe(
      false,
    );
    expect(
      lineKey('shop.orders', rule, 'c-1').equals(
        lineKey('shop.orders', parseRoutingRule('fullDocument.customerID'), 'c-1'),
      ),
    ).toBe(false);
    // "document" is the default routing, byte for byte
    expect(
      lineKey('shop.orders', parseRoutingRule('document'), 7).equals(documentKey('shop.orders', 7)),
    ).toBe(true);
  });
});

describe('routing rules', () => {
  it('reads the four forms and writes them back', () => {
    for (const spec of ['document', 'namespace', 'fullDocument.a.b', 'documentKey.region']) {
      expect(routingSpec(parseRoutingRule(spec))).toBe(spec);
    }
  });

  it.each([
    ['customerId', /is not a routing key/],
    ['fullDocument', /is not a routing key/],
    ['fullDocument.a..b', /segment "",/],
    ['fullDocument.$x', /segment "\$x"/],
    ['documentKey.a.b', /documentKey\.<field>/],
    ['updateDescription.x', /is not a routing key/],
  ])('refuses %s', (spec, message) => {
    expect(() => parseRoutingRule(spec)).toThrow(message);
  });

  it('reads a field, null when missing or under a non-document', () => {
    expect(fieldValue({ a: { b: 3 } }, ['a', 'b'])).toBe(3);
    expect(fieldValue({ a: {} }, ['a', 'b'])).toBeNull();
    expect(fieldValue({ a: [{ b: 1 }] }, ['a', 'b'])).toBeNull();
    expect(fieldValue({ a: 1 }, ['a', 'b'])).toBeNull();
  });
});

describe('workers.toml [routing]', () => {
  const base = 'workers = ["a", "b"]\n';

  it('keeps the rules other than "document"; none by default', () => {
    expect(parseWorkersConfig(base, 'w.toml').routing.size).toBe(0);
    const config = parseWorkersConfig(
      `${base}[routing]\n"shop.orders" = "fullDocument.customerId"\n"shop.audit" = "namespace"\n"shop.items" = "document"\n`,
      'w.toml',
    );
    expect([...config.routing].map(([ns, rule]) => [ns, routingSpec(rule)])).toEqual([
      ['shop.orders', 'fullDocument.customerId'],
      ['shop.audit', 'namespace'],
    ]);
  });

  it.each([
    ['[routing]\norders = "namespace"\n', /key orders is not a namespace.*line 3/s],
    ['[routing]\n"shop.orders" = 3\n', /must be a string/],
    ['[routing]\n"shop.orders" = "customerId"\n', /"customerId" is not a routing key.*line 3/s],
    ['routing = "document"\n', /routing must be a table/],
  ])('refuses %j in one line naming the fix', (text, message) => {
    let error: unknown;
    try {
      parseWorkersConfig(base + text, 'w.toml');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UserError);
    const line = formatUserError(error as UserError);
    expect(line).not.toContain('\n');
    expect(line).toMatch(/Fix: /);
    expect(`${line} line ${(error as UserError).line ?? ''}`).toMatch(message);
  });
});
