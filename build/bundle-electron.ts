import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { buildRenderer } from '../main/ui/build-renderer.js';

/**
 * Bundles the desktop agent for Electron into one app directory that electron-builder packages
 * (`directories.app` in build/electron-builder.json) and Playwright's `_electron.launch` runs:
 *
 *   dist/app/package.json            name, version, `main`, and the one native dependency (keytar)
 *   dist/app/main/index.cjs          the main process: main/index.ts and everything it imports
 *   dist/app/preload/operator-ui.cjs the operator UI's preload (sandboxed: one CommonJS file, requires only electron)
 *   dist/app/preload/workspace.cjs   the workspace apps' preload
 *   dist/app/renderer/               the operator UI (main/ui/build-renderer.ts, without the dev bridge)
 *
 * Runs on any machine: it needs esbuild, not the Electron runtime.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const ELECTRON_APP_DIR = join(ROOT, 'dist', 'app');
/** Electron 45 ships Node 22 and Chromium 142. */
const NODE_TARGET = 'node22';

/** Native or runtime-provided modules the main bundle loads at run time instead of inlining. */
const MAIN_EXTERNALS = ['electron', 'keytar'];

export interface ElectronBundle {
  dir: string;
  /** Source files (relative to the repository) that went into each bundle. */
  inputs: Record<'main' | 'operatorUiPreload' | 'workspacePreload', string[]>;
  /** Modules each bundle still requires at run time. */
  requires: Record<'main' | 'operatorUiPreload' | 'workspacePreload', string[]>;
}

function summarize(metafile: Metafile): { inputs: string[]; requires: string[] } {
  const requires = new Set<string>();
  for (const output of Object.values(metafile.outputs)) {
    for (const imported of output.imports) if (imported.external) requires.add(imported.path);
  }
  const inputs = Object.keys(metafile.inputs).map((file) => relative(ROOT, join(ROOT, file)));
  return { inputs: inputs.sort(), requires: [...requires].sort() };
}

async function bundle(entry: string, outfile: string, external: string[]): Promise<Metafile> {
  const result = await build({
    entryPoints: [join(ROOT, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: NODE_TARGET,
    external,
    // ESM sources may read import.meta.url; in a CommonJS bundle it is the bundle's own file.
    banner: { js: 'const __baton_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
    define: { 'import.meta.url': '__baton_import_meta_url' },
    minify: false,
    sourcemap: false,
    legalComments: 'none',
    metafile: true,
    logLevel: 'silent',
  });
  return result.metafile;
}

export async function bundleElectron(
  outDir = ELECTRON_APP_DIR,
  options: { renderer?: boolean } = {},
): Promise<ElectronBundle> {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const root = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
    version: string;
    description: string;
    optionalDependencies?: Record<string, string>;
  };
  const keytar = root.optionalDependencies?.keytar;
  if (keytar === undefined) throw new Error('package.json lost its keytar optional dependency');
  const appPackage = {
    name: 'baton-agent',
    productName: 'Baton',
    version: root.version,
    description: 'Baton desktop agent: device-bound passkey sessions for shared workstations',
    author: { name: 'Baton' },
    license: 'UNLICENSED',
    private: true,
    main: 'main/index.cjs',
    dependencies: { keytar },
  };
  const [main, operatorUi, workspace] = await Promise.all([
    bundle('main/index.ts', join(outDir, 'main', 'index.cjs'), MAIN_EXTERNALS),
    bundle('main/preload/operator-ui.ts', join(outDir, 'preload', 'operator-ui.cjs'), ['electron']),
    bundle('main/preload/workspace.ts', join(outDir, 'preload', 'workspace.cjs'), ['electron']),
    writeFile(join(outDir, 'package.json'), `${JSON.stringify(appPackage, null, 2)}\n`),
    options.renderer === false ? undefined : buildRenderer(join(outDir, 'renderer')),
  ]);
  const m = summarize(main);
  const o = summarize(operatorUi);
  const w = summarize(workspace);
  return {
    dir: outDir,
    inputs: { main: m.inputs, operatorUiPreload: o.inputs, workspacePreload: w.inputs },
    requires: { main: m.requires, operatorUiPreload: o.requires, workspacePreload: w.requires },
  };
}
