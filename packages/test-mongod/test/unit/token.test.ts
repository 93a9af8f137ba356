// Resume tokens: lexicographic order equals event order; malformed tokens are rejected (260).
import { describe, expect, it } from 'vitest';
import { decodeToken, encodeToken, eventToken, hwmToken } from '../../src/history/token.js';
import { MongoServerError } from '../../src/errors.js';

describe('resume tokens', () => {
  it('round-trip and sort in position order', () => {
    const positions = [
      hwmToken({ t: 5, i: 1 }),
      eventToken({ t: 5, i: 1 }, 0),
      eventToken({ t: 5, i: 1 }, 0, true),
      eventToken({ t: 5, i: 1 }, 1),
      hwmToken({ t: 5, i: 2 }),
      eventToken({ t: 5, i: 300 }, 0),
      eventToken({ t: 6, i: 0 }, 0),
      eventToken({ t: 0xffffffff, i: 0 }, 0),
    ];
    expect([...positions].sort()).toEqual(positions);
    for (const p of positions) expect(encodeToken(decodeToken({ _data: p }))).toBe(p);
  });

  it('puts the fragments of a split event after its own token, in order, before the next event', () => {
    const at = { t: 5, i: 1 };
    const frag = (n: number) =>
      encodeToken({ ts: at, kind: 'event', txnOpIndex: 0, fromInvalidate: false, fragment: n });
    const positions = [eventToken(at, 0), frag(0), frag(1), frag(256), eventToken(at, 1)];
    expect([...positions].sort()).toEqual(positions);
    expect(decodeToken({ _data: frag(1) }).fragment).toBe(1);
    expect(decodeToken({ _data: eventToken(at, 0) }).fragment).toBeUndefined();
    for (const p of positions) expect(encodeToken(decodeToken({ _data: p }))).toBe(p);
    // A high-water mark or an invalidate is never a fragment.
    const hwmFragment = `${hwmToken(at)}00000001`;
    expect(() => decodeToken({ _data: hwmFragment })).toThrow(MongoServerError);
  });

  it('rejects what it cannot parse with InvalidResumeToken', () => {
    for (const bad of [null, 'x', {}, { _data: 1 }, { _data: 'zz' }, { _data: '00'.repeat(16) }]) {
      let err: unknown;
      try {
        decodeToken(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(MongoServerError);
      expect((err as MongoServerError).code).toBe(260);
    }
  });
});
