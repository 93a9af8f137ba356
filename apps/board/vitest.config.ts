import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // expect.poll waits 1 s by default; a first page of Bull Board on a loaded 2-core CI machine
    // can take longer to fetch its queues and render them.
    expect: { poll: { timeout: 15_000, interval: 100 } },
  },
});
