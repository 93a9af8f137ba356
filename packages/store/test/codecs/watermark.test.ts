import { describe, expect, test } from 'vitest';
import { comparePositions, isPastWatermark, snapshotPosition } from '../../src/codecs/watermark.js';

describe('watermark positions', () => {
  test('stream positions (token _data) compare as hex, case-insensitively', () => {
    expect(comparePositions('8200000001', '8200000002')).toBeLessThan(0);
    expect(comparePositions('82000000AB', '82000000ab')).toBe(0);
    expect(isPastWatermark('8200000002', '8200000001')).toBe(true);
    expect(isPastWatermark('8200000001', '8200000001')).toBe(false);
    expect(isPastWatermark('8200000001', undefined)).toBe(true);
  });

  test('snapshot positions sort by batch, then by index within the batch', () => {
    expect(snapshotPosition(3, 12)).toBe('000000000003:000012');
    const sorted = [snapshotPosition(10, 0), snapshotPosition(2, 999), snapshotPosition(2, 1000)];
    expect([...sorted].sort(comparePositions)).toEqual([
      '000000000002:000999',
      '000000000002:001000',
      '000000000010:000000',
    ]);
  });
});
