// The arena that holds cached change-event BSON (src/history/byte-arena.ts).
import { describe, expect, it } from 'vitest';
import { ByteArena } from '../../src/history/byte-arena.js';

describe('ByteArena', () => {
  it('returns equal, independent copies, across chunk boundaries and for large buffers', () => {
    const arena = new ByteArena();
    const sources = Array.from({ length: 3000 }, (_, i) => Buffer.alloc(100 + (i % 300), i % 251));
    sources.push(Buffer.alloc(200_000, 7));
    const copies = sources.map((s) => arena.copy(s));
    for (const s of sources) s.fill(0);
    copies.forEach((c, i) => {
      expect(c.length).toBe(sources[i]?.length);
      expect(c.every((b) => b === (i === 3000 ? 7 : i % 251))).toBe(true);
    });
  });
});
