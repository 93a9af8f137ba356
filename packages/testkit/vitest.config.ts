import { defineConfig } from 'vitest/config';

// Forks, as the packages whose tests use the kit run theirs; the fixtures run in runs of their own.
export default defineConfig({
  test: { include: ['test/*.test.ts'], pool: 'forks' },
});
