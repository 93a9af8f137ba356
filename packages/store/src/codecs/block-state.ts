/**
 * What the hash `workerKeys().blocked` holds per document (`dead_letter = "block"`): which dead
 * letter blocks it, and whether an operator's retry or discard of it is under way. JSON.
 */

/** State of a blocked document: which dead letter blocks it, and whether a re-run is under way. */
export interface BlockState {
  dead: string;
  state: 'blocked' | 'retry' | 'discard';
  since: string;
}

export function encodeBlockState(state: BlockState): string {
  return JSON.stringify(state);
}

/** The block state of a hash field; undefined when absent or unreadable. */
export function parseBlockState(value: string | null | undefined): BlockState | undefined {
  if (value === null || value === undefined) return undefined;
  try {
    return JSON.parse(value) as BlockState;
  } catch {
    return undefined;
  }
}
