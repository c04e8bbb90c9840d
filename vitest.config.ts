import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // The suites start real HTTP servers and databases; two workers match the two cores these machines have.
    maxWorkers: 2,
    globalSetup: ["./test/support/global-setup.ts"],
    reporters: ["default", "./test/support/count-reporter.ts"],
  },
});
