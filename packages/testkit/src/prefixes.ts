let counter = 0;

/**
 * A Redis key prefix (QUEUE_PREFIX) no other test of this file uses: `<label><n>`, n counting up
 * from 1 per test file, so tests sharing one Redis server never see each other's keys.
 */
export function isolatedPrefix(label = 't'): string {
  counter += 1;
  return `${label}${counter}`;
}
