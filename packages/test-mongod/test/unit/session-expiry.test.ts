// Logical sessions expire after logicalSessionTimeoutMinutes (30) without use, as on MongoDB
// (manual: Sessions — localLogicalSessionTimeoutMinutes), so clients killed without endSessions
// do not make the server's memory grow for its whole life.
import { describe, expect, it } from 'vitest';
import { expireSessions } from '../../src/server.js';
import type { SessionState } from '../../src/state.js';

describe('expireSessions', () => {
  it('forgets sessions idle for more than 30 minutes and keeps the others', () => {
    const now = Date.now();
    const sessions = new Map<string, SessionState>([
      ['old', { lsid: {}, lastUse: now - 31 * 60_000 }],
      ['recent', { lsid: {}, lastUse: now - 29 * 60_000 }],
    ]);
    expireSessions(sessions, now);
    expect([...sessions.keys()]).toEqual(['recent']);
  });
});
