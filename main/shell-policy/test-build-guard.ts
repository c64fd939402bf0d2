import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The test build (build/electron-builder.test.json) keeps Electron's `--inspect` fuse on so that
 * Playwright can drive it: anyone at the keyboard who can pass a command-line flag could then debug
 * the agent's main process and read its tokens. electron-builder writes `"batonBuild": "test"` into
 * that build's package.json (`extraMetadata`), and the agent refuses to start as it unless it is
 * asked to explicitly (`BATON_TEST_BUILD=1`), and never as a kiosk.
 */
export const TEST_BUILD_FLAG = 'BATON_TEST_BUILD';

/** `"test"` for the test build, `"release"` otherwise (the release build's package.json has no mark). */
export function buildFlavour(appPackage: unknown): 'test' | 'release' {
  const mark =
    typeof appPackage === 'object' && appPackage !== null
      ? (appPackage as { batonBuild?: unknown }).batonBuild
      : undefined;
  return mark === 'test' ? 'test' : 'release';
}

/** Reads the running app's package.json (inside app.asar when packaged). */
export function readBuildFlavour(appPath: string): 'test' | 'release' {
  return buildFlavour(JSON.parse(readFileSync(join(appPath, 'package.json'), 'utf8')) as unknown);
}

/** Why this build must not start with this configuration, or undefined when it may. */
export function testBuildRefusal(
  flavour: 'test' | 'release',
  config: { kiosk: boolean },
  env: Record<string, string | undefined>,
): string | undefined {
  if (flavour !== 'test') return undefined;
  if (config.kiosk) {
    return 'This is the Baton test build (its debugger can be switched on): it never runs as a kiosk. Install the release build on consoles.';
  }
  if (env[TEST_BUILD_FLAG] !== '1') {
    return `This is the Baton test build (its debugger can be switched on): it starts only for tests, with ${TEST_BUILD_FLAG}=1. Install the release build on consoles.`;
  }
  return undefined;
}
