import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    // Deno's own suites (`deno test`) and dependencies are not Vitest's.
    exclude: ['node_modules/**', 'dist/**', '**/*.deno.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
