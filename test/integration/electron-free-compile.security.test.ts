import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { after, describe, test } from 'node:test';
import ts from 'typescript';

/**
 * The compiler, not only lint, keeps `electron` out of main/core, main/shell-policy, main/ui and
 * main/headless.ts: their project (main/tsconfig.electron-free.json, part of `tsc -b`) maps `electron` to a stub that fails
 * to compile, so every form of import is an error there, while the same code compiles without it.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const CONFIG = join(ROOT, 'main', 'tsconfig.electron-free.json');
const ELECTRON_PACKAGE = `${sep}node_modules${sep}electron${sep}`;

function electronFreeOptions(): ts.CompilerOptions {
  const read = ts.readConfigFile(CONFIG, (path) => ts.sys.readFile(path));
  assert.equal(read.error, undefined);
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, join(ROOT, 'main'), undefined, CONFIG);
  assert.deepEqual(parsed.errors, []);
  return {
    ...parsed.options,
    noEmit: true,
    composite: false,
    incremental: false,
    declaration: false,
    emitDeclarationOnly: false,
  };
}

function compile(rootNames: string[], options: ts.CompilerOptions) {
  const program = ts.createProgram({ rootNames, options });
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, ' '));
  const electronFiles = program
    .getSourceFiles()
    .filter((f) => f.fileName.split('/').join(sep).includes(ELECTRON_PACKAGE));
  return { diagnostics, electronFiles };
}

describe('the Electron-free project (main/core, main/shell-policy)', () => {
  // Under the repository (rootDir is the repository), in the ignored .tmp/.
  mkdirSync(join(ROOT, '.tmp'), { recursive: true });
  const dir = mkdtempSync(join(ROOT, '.tmp', 'electron-free-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const options = electronFreeOptions();
  const source = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  const forms: Record<string, string> = {
    'a value import': "import { app } from 'electron';\nexport const version = app.getVersion();\n",
    'a type-only import': "import type { Session } from 'electron';\nexport type S = Session;\n",
    'a namespace import': "import * as electron from 'electron';\nexport const e = electron;\n",
    'a side-effect import': "import 'electron';\nexport {};\n",
    'an import type expression': "export type Clip = typeof import('electron').clipboard;\n",
    'a subpath import': "import { app } from 'electron/main';\nexport const a = app;\n",
  };
  for (const [form, text] of Object.entries(forms)) {
    test(`refuses ${form} of electron, and Electron's types never enter the program`, () => {
      const result = compile([source(`${form.replaceAll(' ', '-')}.ts`, text)], options);
      assert.ok(result.diagnostics.length > 0, `expected ${form} to fail to compile`);
      assert.ok(
        result.diagnostics.some((d) => /electron/i.test(d)),
        `expected an error naming electron, got: ${result.diagnostics.join(' | ')}`,
      );
      assert.deepEqual(result.electronFiles, []);
    });
  }

  test('compiles the same kind of file when it imports Node instead (the refusal is about electron)', () => {
    const file = source('node-only.ts', "import { readFileSync } from 'node:fs';\nexport const read = readFileSync;\n");
    assert.deepEqual(compile([file], options).diagnostics, []);
  });

  test('the real main/core, shell-policy, ui and headless.ts compile with no file of the electron package in them', () => {
    const read = ts.readConfigFile(CONFIG, (path) => ts.sys.readFile(path));
    const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, join(ROOT, 'main'), undefined, CONFIG);
    assert.ok(parsed.fileNames.some((f) => f.includes('/main/core/')));
    assert.ok(parsed.fileNames.some((f) => f.includes('/main/shell-policy/')));
    assert.ok(parsed.fileNames.some((f) => f.includes('/main/ui/')));
    assert.ok(parsed.fileNames.some((f) => f.endsWith('/main/headless.ts')));
    assert.ok(!parsed.fileNames.some((f) => f.includes('/main/shell/') || f.includes('/main/preload/')));
    const program = ts.createProgram({ rootNames: parsed.fileNames, options });
    const files = program.getSourceFiles().map((f) => f.fileName);
    assert.deepEqual(
      files.filter((f) => f.split('/').join(sep).includes(ELECTRON_PACKAGE) || f.endsWith('/main/no-electron.ts')),
      [],
    );
  });
});
