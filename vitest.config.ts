import { defineConfig } from "vitest/config";

// Two projects: "unit" runs in seconds with fakes only (fake helm on PATH, in-memory
// transports); "e2e" needs the real testbed (`npm run testbed:up`, env from .testbed/env).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts", "test/service/**/*.test.ts", "test/adapter/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/integration/**/*.test.ts", "test/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 180_000,
          hookTimeout: 300_000,
          // Files share one cluster; run them one at a time, tests inside in order.
          fileParallelism: false,
        },
      },
    ],
    coverage: {
      provider: "v8",
      include: ["src/**/*.ts", "clients/**/*.ts"],
      reporter: ["text-summary", "text"],
      // The server's own process (main.ts) runs as a child in e2e tests and is not counted.
      exclude: ["src/main.ts"],
      thresholds: { lines: 80 },
    },
  },
});
