import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests share one Redis (each with its own prefix) and spawn processes: keep the
    // 2-core machine from being oversubscribed.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
