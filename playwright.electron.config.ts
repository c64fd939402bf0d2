import { defineConfig } from '@playwright/test';

/**
 * The desktop agent in a real Electron runtime (`_electron.launch`), driven through the same
 * `window.baton` contract as the browser journeys. Where the runtime is not installed (as on the
 * development machines, which cannot download it) every test is skipped with the reason printed;
 * .github/workflows/electron.yml runs them on a hosted runner under Xvfb.
 */
export default defineConfig({
  testDir: 'test/electron',
  outputDir: 'test-results/electron',
  workers: 1,
  fullyParallel: false,
  forbidOnly: process.env.CI !== undefined,
  retries: 0,
  timeout: 90_000,
  expect: { timeout: 15_000 },
  reporter: 'list',
});
