import { Timestamp } from 'mongodb';
import { describe, expect, test } from 'vitest';
import { compareTokenData, tokenClusterTime } from '../src/resume-token.js';

describe('resume tokens', () => {
  test('compare as hex strings, case-insensitively', () => {
    expect(compareTokenData('8200000001', '8200000002')).toBeLessThan(0);
    expect(compareTokenData('82000000AB', '82000000ab')).toBe(0);
    expect(compareTokenData('8200000010', '820000000F')).toBeGreaterThan(0);
  });

  test('a KeyString token starting with a Timestamp yields its cluster time', () => {
    const time = tokenClusterTime({ _data: '8265A1B2C3000000072B' });
    expect(time).toEqual(new Timestamp({ t: 0x65a1b2c3, i: 7 }));
    expect(tokenClusterTime({ _data: 'zz' })).toBeNull();
  });
});
