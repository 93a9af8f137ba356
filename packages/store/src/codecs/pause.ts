/**
 * What the pause keys hold (`ingestKeys().pause`, `workerKeys().pause` and their `pauseState`),
 * as JSON. The operator's request carries an id; the process answers with the id of the request
 * it obeys, so `changeq pause --wait` knows its own pause (not an older one) took effect.
 */

/** An operator's pause (`changeq pause`): present while the process must stay paused. */
export interface PauseRequest {
  id: string;
  /** When it was asked (ISO 8601). */
  at: string;
}

/**
 * `pausing`: asked, not yet in effect (a worker's handler calls are still running);
 * `paused`: in effect; `running`: no pause.
 */
export type PauseState = 'running' | 'pausing' | 'paused';

/** What the active process reports about the pause. */
export interface PauseReport {
  state: PauseState;
  /** The id of the request obeyed (null while running). */
  request: string | null;
  /** When the state was entered (ISO 8601). */
  since: string;
  pid: number;
  host: string;
  /** A worker's handler calls still running (pausing). */
  running?: number;
}

const STATES: readonly string[] = ['running', 'pausing', 'paused'];

export function encodePause(value: PauseRequest | PauseReport): string {
  return JSON.stringify(value);
}

/** The stored request; null when there is none, or the value is not one (a stray write). */
export function parsePauseRequest(raw: string | null): PauseRequest | null {
  const value = parseObject(raw);
  return value && typeof value.id === 'string' && typeof value.at === 'string'
    ? { id: value.id, at: value.at }
    : null;
}

/** The stored report; null when there is none (no process, or it died and the key expired). */
export function parsePauseReport(raw: string | null): PauseReport | null {
  const value = parseObject(raw);
  if (!value || typeof value.state !== 'string' || !STATES.includes(value.state)) return null;
  return value as unknown as PauseReport;
}

function parseObject(raw: string | null): Record<string, unknown> | null {
  if (raw === null) return null;
  try {
    const value: unknown = JSON.parse(raw);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
