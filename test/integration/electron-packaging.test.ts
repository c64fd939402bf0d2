import assert from 'node:assert/strict';
import { builtinModules, createRequire } from 'node:module';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bundleElectron, type ElectronBundle } from '../../build/bundle-electron.js';
import { buildFlavour, readBuildFlavour, testBuildRefusal } from '../../main/shell-policy/test-build-guard.js';
import { checkBuilderConfigs, type BuilderConfigOutcome } from '../helpers/electron-builder-config.js';

/**
 * The desktop agent's build and packaging, checked without the Electron runtime: the esbuild
 * bundle that Electron would load, electron-builder's configuration validated by electron-builder's
 * own loader and schema, the fuses of the packaged and the test build, and the CI workflow.
 */
const ROOT = join(import.meta.dirname, '..', '..');
/** npm's version-range rules: `semver`, installed as a dependency of the build tools (not a direct one of ours). */
const semver = createRequire(import.meta.url)('semver') as {
  satisfies(version: string, range: string): boolean;
  intersects(a: string, b: string): boolean;
};

interface BuilderConfig {
  appId: string;
  productName: string;
  directories: { app: string; output: string };
  files: { filter?: string[] }[] | string[];
  asar: boolean;
  electronVersion: string;
  electronFuses: Record<string, boolean>;
  executableName: string;
  extraMetadata?: Record<string, unknown>;
  win: { target: string[]; artifactName: string };
  mac: { target: string[]; artifactName: string };
  linux: { target: string[]; artifactName: string };
}

const PACKAGED_FUSES = {
  runAsNode: false,
  enableCookieEncryption: true,
  enableNodeOptionsEnvironmentVariable: false,
  enableNodeCliInspectArguments: false,
  enableEmbeddedAsarIntegrityValidation: true,
  onlyLoadAppFromAsar: true,
  loadBrowserProcessSpecificV8Snapshot: false,
  grantFileProtocolExtraPrivileges: false,
};

/** The bundle is built once, into a directory of its own, for every test that reads it. */
const bundleDir = mkdtempSync(join(tmpdir(), 'baton-electron-'));
let bundle: ElectronBundle | undefined;
after(() => rmSync(bundleDir, { recursive: true, force: true }));
const built = async () => (bundle ??= await bundleElectron(bundleDir));

describe('the Electron bundle (esbuild; no runtime needed)', () => {
  const dir = bundleDir;

  test('the sandboxed preloads are single CommonJS files that require nothing but electron', async () => {
    const b = await built();
    assert.deepEqual(b.requires.operatorUiPreload, ['electron']);
    assert.deepEqual(b.requires.workspacePreload, ['electron']);
    assert.deepEqual(b.inputs.workspacePreload, ['main/preload/workspace.ts']);
    const preload = readFileSync(join(dir, 'preload', 'operator-ui.cjs'), 'utf8');
    assert.match(preload, /exposeInMainWorld\("baton"/);
    assert.doesNotMatch(preload, /exposeInMainWorld\("baton",\s*\w*ipcRenderer/);
    assert.doesNotMatch(preload, /sendSync/);
  });

  test('the main bundle holds the agent core and shell, not the backend, the renderer or build tools', async () => {
    const b = await built();
    const ours = b.inputs.main.filter((file) => !file.startsWith('node_modules/'));
    assert.ok(ours.includes('main/index.ts') && ours.includes('main/shell/window-factory.ts'));
    assert.deepEqual(
      ours.filter((file) => /^(backend|renderer|admin|test)\//.test(file)),
      [],
    );
    assert.ok(!b.inputs.main.some((file) => file.startsWith('node_modules/esbuild/')), 'no build tool in the app');
    assert.ok(!b.requires.main.includes('esbuild'), 'nothing in the app loads esbuild');
    const runtime = b.requires.main.filter((name) => !builtinModules.includes(name.replace(/^node:/, '')));
    assert.deepEqual(runtime.sort(), ['bufferutil', 'electron', 'keytar', 'utf-8-validate']);
  });

  test('the bundled app is the release build, and its main process runs the test-build guard before anything else', async () => {
    const b = await built();
    assert.equal(readBuildFlavour(dir), 'release');
    assert.ok(b.inputs.main.includes('main/shell-policy/test-build-guard.ts'));
    const main = readFileSync(join(dir, 'main', 'index.cjs'), 'utf8');
    const guard = main.indexOf('testBuildRefusal(readBuildFlavour(');
    assert.ok(guard >= 0, 'main/index.ts calls the guard');
    assert.ok(guard < main.indexOf('await startUiServer('), 'before the operator UI starts');
  });

  test('the app package names its entry point, the built renderer is beside it, and the dev bridge is not', async () => {
    await built();
    const app = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(app.main, 'main/index.cjs');
    assert.deepEqual(Object.keys(app.dependencies as object), ['keytar']);
    readFileSync(join(dir, 'main', 'index.cjs'));
    const html = readFileSync(join(dir, 'renderer', 'index.html'), 'utf8');
    assert.doesNotMatch(html, /dev-bridge/);
  });
});

describe('packaging for IT (electron-builder configuration)', () => {
  // electron-builder's loader runs in a child process (it logs to stdout; see the helper).
  let checked: { outcomes: BuilderConfigOutcome[]; output: string };
  before(async () => {
    checked = await checkBuilderConfigs([
      { file: 'build/electron-builder.json' },
      { file: 'build/electron-builder.test.json' },
      { file: 'build/electron-builder.json', override: { electronFuses: { runAsNod: false } } },
    ]);
  });
  const loaded = (index: number): BuilderConfig => {
    const outcome = checked.outcomes[index];
    if (outcome?.ok !== true)
      assert.fail(`electron-builder refused the configuration: ${JSON.stringify(outcome)}\n${checked.output}`);
    return outcome.config as BuilderConfig;
  };
  const releaseConfig = () => loaded(0);
  const testConfig = () => loaded(1);

  test('the release configuration passes electron-builder’s own loader and schema', () => {
    const config = releaseConfig();
    assert.equal(config.appId, 'org.baton.agent');
    assert.equal(config.productName, 'Baton');
    assert.equal(config.asar, true);
    assert.equal(config.directories.app, 'dist/app');
    assert.equal(
      config.electronVersion,
      (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> })
        .devDependencies.electron,
    );
    assert.deepEqual(config.win.target, ['nsis', 'msi']);
    assert.deepEqual(config.mac.target, ['dmg']);
    assert.deepEqual(config.linux.target, ['deb', 'AppImage']);
  });

  test('only the bundled output is packaged', () => {
    const config = releaseConfig();
    const patterns = config.files.flatMap((f) => (typeof f === 'string' ? [f] : (f.filter ?? [])));
    for (const pattern of patterns) {
      assert.match(pattern, /^(!|package\.json$|main\/\*\*\/\*\.cjs$|preload\/\*\*\/\*\.cjs$|renderer\/)/, pattern);
    }
  });

  test('packaged builds flip the fuses: no RunAsNode, NODE_OPTIONS or inspector; asar integrity; cookie encryption', () => {
    const config = releaseConfig();
    assert.deepEqual(config.electronFuses, PACKAGED_FUSES);
  });

  test('the test build differs only in name, mark, output, targets and the inspector fuse Playwright needs', () => {
    const release = releaseConfig();
    const testBuild = testConfig();
    assert.deepEqual(testBuild.electronFuses, { ...PACKAGED_FUSES, enableNodeCliInspectArguments: true });
    assert.notEqual(testBuild.appId, release.appId, 'a test build never installs over the real agent');
    assert.notEqual(testBuild.directories.output, release.directories.output);
    assert.equal(testBuild.directories.app, release.directories.app);
    assert.deepEqual(release.extraMetadata, undefined, 'the release build carries no test mark');
    assert.deepEqual(testBuild.extraMetadata, {
      name: 'baton-agent-test-build',
      productName: 'Baton TEST BUILD',
      batonBuild: 'test',
    });
  });

  test('the test build cannot be mistaken for, or installed as, the agent: its own names and no installer target', () => {
    const testBuild = testConfig();
    assert.match(testBuild.productName, /TEST BUILD/);
    assert.match(testBuild.executableName, /test-build/);
    for (const os of ['win', 'mac', 'linux'] as const) {
      assert.deepEqual(testBuild[os].target, ['dir'], `${os}: an unpacked directory, never an installer or package`);
      assert.match(testBuild[os].artifactName, /TEST-BUILD/);
    }
  });

  test('the test build refuses to start as a kiosk, or without BATON_TEST_BUILD=1; the release build is unaffected', async () => {
    await built();
    // The packaged test build's package.json: the bundle's, with electron-builder's extraMetadata merged in.
    const packaged = mkdtempSync(join(tmpdir(), 'baton-test-build-'));
    try {
      const bundled = JSON.parse(readFileSync(join(bundleDir, 'package.json'), 'utf8')) as object;
      writeFileSync(join(packaged, 'package.json'), JSON.stringify({ ...bundled, ...testConfig().extraMetadata }));
      assert.equal(readBuildFlavour(packaged), 'test');
    } finally {
      rmSync(packaged, { recursive: true, force: true });
    }
    const flavour = buildFlavour(testConfig().extraMetadata);
    assert.equal(flavour, 'test');
    assert.match(testBuildRefusal(flavour, { kiosk: true }, { BATON_TEST_BUILD: '1' }) ?? '', /never runs as a kiosk/);
    assert.match(testBuildRefusal(flavour, { kiosk: false }, {}) ?? '', /only for tests, with BATON_TEST_BUILD=1/);
    assert.match(testBuildRefusal(flavour, { kiosk: false }, { BATON_TEST_BUILD: 'yes' }) ?? '', /BATON_TEST_BUILD=1/);
    assert.equal(testBuildRefusal(flavour, { kiosk: false }, { BATON_TEST_BUILD: '1' }), undefined);
    const release = readBuildFlavour(bundleDir);
    assert.equal(release, 'release');
    assert.equal(testBuildRefusal(release, { kiosk: true }, {}), undefined);
  });

  test('a configuration electron-builder would reject is caught by the same check', () => {
    const bad = checked.outcomes[2];
    assert.equal(bad?.ok, false);
    assert.match(bad.ok ? '' : bad.error, /electronFuses/);
  });

  test('electron-builder’s own loader read both files (its log stays in the child)', () => {
    assert.match(checked.output, /loaded configuration\s+file=\S*build\/electron-builder\.json/);
    assert.match(checked.output, /loaded configuration\s+file=\S*build\/electron-builder\.test\.json/);
  });
});

describe('CI and the lock file', () => {
  test('the Electron workflow runs the suite under Xvfb and builds the packages, naming no host of its own', () => {
    const workflow = readFileSync(join(ROOT, '.github/workflows/electron.yml'), 'utf8');
    assert.match(workflow, /xvfb-run/);
    assert.match(workflow, /npx electron --version/);
    assert.match(workflow, /test:electron/);
    assert.match(workflow, /package:electron/);
    const uses = [...workflow.matchAll(/uses:\s*(\S+)/g)].map((m) => m[1]);
    assert.deepEqual([...new Set(uses)].sort(), [
      'actions/checkout@v4',
      'actions/setup-node@v4',
      'actions/upload-artifact@v4',
    ]);
    assert.doesNotMatch(workflow, /https?:\/\//);
  });

  test('one answer to "which Node": engines, the README, the CI workflows and what the dependencies declare agree', () => {
    const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } })
      .engines.node;
    assert.equal(engines, '^20.18.1 || >=22.12.0');
    assert.ok(readFileSync(join(ROOT, 'README.md'), 'utf8').includes(`\`${engines}\``), 'the README states it');
    // Every dependency runs on the oldest Node 20 allowed, except the Electron runtime and packaging
    // tools, which need 22.12 and run only where that is installed (electron.yml).
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { engines?: { node?: string } | string[] }>;
    };
    const needs22: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
      if (range === undefined || path === '') continue;
      assert.ok(semver.satisfies('22.12.0', range), `${path} refuses Node 22.12 (${range})`);
      if (!semver.satisfies('20.18.1', range)) needs22.push(path.replace(/^.*node_modules\//, ''));
    }
    assert.deepEqual(
      needs22.filter((name) => !/^(electron|@electron\/|@electron-internal\/|node-abi$)/.test(name)),
      [],
      'only the Electron runtime and its packaging tools need Node 22',
    );
    // Every Node line CI runs is one engines allows; the Electron job runs on 22 or later.
    const workflows = readdirSync(join(ROOT, '.github/workflows')).map((file) => ({
      file,
      text: readFileSync(join(ROOT, '.github/workflows', file), 'utf8'),
    }));
    for (const { file, text } of workflows) {
      const versions = [...text.matchAll(/node-version:\s*(\[[^\]]*\]|\d[\w.]*)/g)].flatMap((m) =>
        (m[1] ?? '').replace(/[[\]\s]/g, '').split(','),
      );
      for (const version of versions) {
        assert.ok(semver.intersects(`${version}.x`.replace(/(\.\d+)\.x$/, '$1'), engines), `${file}: Node ${version}`);
        if (file === 'electron.yml') assert.ok(Number(version.split('.')[0]) >= 22, `${file}: Node ${version}`);
      }
    }
    assert.deepEqual(workflows.map((w) => w.file).sort(), ['electron.yml', 'test.yml']);
    assert.match(workflows.find((w) => w.file === 'test.yml')?.text ?? '', /node-version: \[20, 22\]/);
  });

  test('package-lock.json names no registry or funding host', () => {
    const lock = readFileSync(join(ROOT, 'package-lock.json'), 'utf8');
    assert.doesNotMatch(lock, /https?:\/\//);
    assert.doesNotMatch(lock, /"funding"/);
  });
});
