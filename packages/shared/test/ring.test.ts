import { describe, expect, it } from 'vitest';
import { Router, RingRouter, documentKey, losingNames, ringDiff, type RingEpoch } from '../src/index.js';

const NS = 'shop.orders';
const THREE = ['north', 'south', 'east'];
const FOUR = [...THREE, 'west'];
const P2 = '8200000010000000012B0229296E04';
const P3 = '8200000020000000012B0229296E04';
const HISTORY: RingEpoch[] = [
  { epoch: 1, names: THREE, from: '' },
  { epoch: 2, names: FOUR, from: P2 },
  { epoch: 3, names: ['north', 'east', 'west'], from: P3 },
];
const keys = Array.from({ length: 3000 }, (_, i) => documentKey(NS, i));

describe('RingRouter', () => {
  it('routes by the latest epoch whose `from` sorts before the position', () => {
    const ring = new RingRouter(HISTORY);
    expect(ring.epochAt('82000000000000000').epoch).toBe(1);
    expect(ring.epochAt(P2).epoch).toBe(1); // `from` itself was routed by the epoch before
    expect(ring.epochAt(`${P2}!`).epoch).toBe(2); // a handoff marker sorts right after P
    expect(ring.epochAt('8200000010000000022B').epoch).toBe(2);
    expect(ring.epochAt(P2.toLowerCase() + '00').epoch).toBe(2); // hex compares case-insensitively
    expect(ring.epochAt('8200000030').epoch).toBe(3);
    expect(ring.current.epoch).toBe(3);
  });

  it('is a pure function of (history, position): the same route in any order, any instance', () => {
    const a = new RingRouter(HISTORY);
    const b = new RingRouter([...HISTORY].reverse());
    for (const position of ['', '82', P2, `${P2}00`, P3, `${P3}00`, 'F0']) {
      for (const key of keys.slice(0, 200)) {
        expect(b.route(key, position)).toEqual(a.route(key, position));
      }
    }
  });

  it('holds exactly the documents that changed owner at the epoch, on their old owner', () => {
    const ring = new RingRouter(HISTORY);
    const three = new Router(THREE);
    const four = new Router(FOUR);
    let moved = 0;
    for (const key of keys) {
      const route = ring.route(key, `${P2}00`);
      expect(route.owner).toBe(four.routeKey(key));
      const before = three.routeKey(key);
      if (before === route.owner) expect(route.hold).toBeNull();
      else {
        moved++;
        expect(route.owner).toBe('west'); // adding a name moves documents onto it only
        expect(route.hold).toEqual({ epoch: 2, workers: [before] });
      }
      expect(ring.route(key, '8200').hold).toBeNull(); // epoch 1 never holds
    }
    expect(moved / keys.length).toBeGreaterThan(0.2);
    expect(moved / keys.length).toBeLessThan(0.3);
    // Removing `south`: only its documents move, each onto a remaining name.
    for (const key of keys) {
      const route = ring.route(key, `${P3}00`);
      const before = four.routeKey(key);
      if (before === 'south') expect(route.hold).toEqual({ epoch: 3, workers: ['south'] });
      else expect(route).toEqual({ owner: before, hold: null });
    }
  });

  it('holds namespace-wide events on each name behind the names it may have gained from', () => {
    const ring = new RingRouter(HISTORY);
    expect(ring.routeAll('8200')).toEqual(THREE.map((owner) => ({ owner, hold: null })));
    expect(ring.routeAll(`${P2}00`)).toEqual([
      { owner: 'north', hold: null },
      { owner: 'south', hold: null },
      { owner: 'east', hold: null },
      { owner: 'west', hold: { epoch: 2, workers: THREE } },
    ]);
    expect(ring.routeAll(`${P3}00`)).toEqual(
      ['north', 'east', 'west'].map((owner) => ({
        owner,
        hold: { epoch: 3, workers: ['south'] },
      })),
    );
  });

  it('names what changed and who loses documents', () => {
    expect(ringDiff(THREE, FOUR)).toEqual({ added: ['west'], removed: [] });
    expect(losingNames(THREE, FOUR)).toEqual(THREE);
    expect(losingNames(FOUR, ['north', 'east', 'west'])).toEqual(['south']);
  });

  it('refuses an empty history and epochs out of position order', () => {
    expect(() => new RingRouter([])).toThrow(/at least one epoch/);
    expect(
      () =>
        new RingRouter([
          { epoch: 1, names: THREE, from: '' },
          { epoch: 2, names: FOUR, from: P3 },
          { epoch: 3, names: THREE, from: P2 },
        ]),
    ).toThrow(/epoch 3 starts at a position before epoch 2/);
  });
});
