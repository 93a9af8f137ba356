import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Every file starts real servers and processes and kills some of them: one file at a time
    // keeps timings sane on a two-core machine.
    fileParallelism: false,
  },
});
