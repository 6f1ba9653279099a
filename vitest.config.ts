import { defineConfig } from "vitest/config";
import { CHILD_HARNESS } from "./test/helpers/childHarness.js";

// Test tiers by suffix: unit (pure, no I/O), integration (real nats-server),
// e2e (real services, real MCP upstreams). Each tier is a project with its own script, and each
// kills what its tests spawned when a test fails, times out or loses its worker (CHILD_HARNESS).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          ...CHILD_HARNESS,
          sequence: { groupOrder: 0 },
          include: ["libs/*/src/**/*.unit.spec.ts", "services/*/src/**/*.unit.spec.ts", "test/unit/**/*.unit.spec.ts"],
        },
      },
      {
        test: {
          name: "integration",
          ...CHILD_HARNESS,
          sequence: { groupOrder: 1 },
          include: ["test/integration/**/*.int.spec.ts"],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        test: {
          name: "e2e",
          ...CHILD_HARNESS,
          sequence: { groupOrder: 2 },
          include: ["test/e2e/**/*.e2e.spec.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // Each file starts its own nats-server and services; two cores run two at a time.
          maxWorkers: 2,
          // These suites run real processes on a shared two-core machine, where a process can be
          // starved for a moment; one retry absorbs that, and the reporter still names any test
          // that needed it.
          retry: 1,
        },
      },
    ],
  },
});
