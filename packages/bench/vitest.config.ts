import { defineConfig } from 'vitest/config';

// Unit tests of the bench modules only: the benchmark itself is `npm run bench`, not part of npm test.
export default defineConfig({
  test: { include: ['test/*.test.ts'], pool: 'forks' },
});
