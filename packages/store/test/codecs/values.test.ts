/** The small JSON values: lease holders, block states, dead-letter commands. */
import { describe, expect, test } from 'vitest';
import { encodeBlockState, parseBlockState } from '../../src/codecs/block-state.js';
import { decodeCommand, encodeCommand } from '../../src/codecs/dead-letter.js';
import { encodeLeaseRequest, parseLeaseValue } from '../../src/codecs/lease.js';

describe('lease values', () => {
  test('the holder is read back from the stored value (fence first, as the script writes it)', () => {
    const request = encodeLeaseRequest({
      owner: 'o1',
      worker: 'alpha',
      pid: 42,
      host: 'h',
      startedAt: '2026-01-02T03:04:05.000Z',
    });
    // What lua/acquireLease-2.lua stores: the fence spliced in front of the request's fields.
    const stored = `{"fence":7,${request.slice(1)}`;
    expect(parseLeaseValue(stored)).toEqual({
      fence: 7,
      owner: 'o1',
      worker: 'alpha',
      pid: 42,
      host: 'h',
      startedAt: '2026-01-02T03:04:05.000Z',
    });
    expect(parseLeaseValue(null)).toBeUndefined();
    expect(parseLeaseValue('not json')).toBeUndefined();
  });
});

describe('block states', () => {
  test('survive the round trip; absent or unreadable fields are no block', () => {
    const state = { dead: 'j1', state: 'retry' as const, since: '2026-01-02T03:04:05.000Z' };
    expect(parseBlockState(encodeBlockState(state))).toEqual(state);
    expect(parseBlockState(undefined)).toBeUndefined();
    expect(parseBlockState(null)).toBeUndefined();
    expect(parseBlockState('{')).toBeUndefined();
  });
});

describe('dead-letter commands', () => {
  test('survive the round trip; text that is not JSON is no command', () => {
    const command = { op: 'discard' as const, jobId: 'j1', at: '2026-01-02T03:04:05.000Z' };
    expect(decodeCommand(encodeCommand(command))).toEqual(command);
    expect(decodeCommand('retry j1')).toBeUndefined();
  });
});
