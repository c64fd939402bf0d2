import { defineConfig } from '@playwright/test';

/**
 * Browser end-to-end tests: Debian's Chromium (Playwright's own browser download is not reachable
 * here) with a CDP virtual authenticator, against the real backend over HTTP. Each test starts its
 * own backend and serves the renderer's ceremony page itself, so there is no webServer.
 */
export const CHROMIUM = process.env.BATON_CHROMIUM ?? '/usr/bin/chromium';
/** Flags for Debian's Chromium in a container with no display and no network beyond loopback. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export default defineConfig({
  testDir: 'test/e2e',
  outputDir: 'test-results',
  workers: 1,
  fullyParallel: false,
  forbidOnly: process.env.CI !== undefined,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  reporter: 'list',
  use: {
    browserName: 'chromium',
    headless: true,
    launchOptions: {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
    },
    trace: 'retain-on-failure',
  },
});
