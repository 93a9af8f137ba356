import { defineConfig } from 'vitest/config';

// Unit tests of the measurements only: the matrix itself is `npm run chaos`, not part of npm test.
export default defineConfig({
  test: { include: ['test/*.test.ts'], pool: 'forks' },
});
