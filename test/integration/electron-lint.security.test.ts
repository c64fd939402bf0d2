import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import { ESLint, type Linter } from 'eslint';
import tseslint from 'typescript-eslint';

/**
 * The Electron security rules of eslint.config.js (the lint step's Electron linter) catch what
 * they are meant to catch, and main/ holds none of it today.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const rules = (await import(pathToFileURL(join(ROOT, 'eslint.config.js')).href)) as {
  electronSecurity(): Linter.RuleEntry[];
  electronConstructors: unknown;
  rawIpcMain: unknown;
};

async function violations(code: string): Promise<string[]> {
  const eslint = new ESLint({
    cwd: ROOT,
    overrideConfigFile: true,
    overrideConfig: [
      {
        files: ['**/*.ts'],
        languageOptions: { parser: tseslint.parser as Linter.Parser },
        rules: {
          'no-restricted-syntax': ['error', ...rules.electronSecurity(), rules.electronConstructors, rules.rawIpcMain],
        } as Linter.RulesRecord,
      },
    ],
  });
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, 'main', 'shell', 'fixture.ts') });
  return (result?.messages ?? []).map((m) => m.message);
}

describe('Electron security lint rules', () => {
  const cases: [string, string, RegExp][] = [
    ['nodeIntegration on', 'const p = { nodeIntegration: true };', /nodeIntegration/],
    ['sandbox off', 'const p = { sandbox: false };', /sandbox/],
    ['context isolation off', 'const p = { contextIsolation: false };', /contextIsolation/],
    ['web security off', 'const p = { webSecurity: false };', /webSecurity/],
    ['webview tag', 'const p = { webviewTag: true };', /webviewTag/],
    ['a window outside the factory', 'new BrowserWindow({});', /window-factory/],
    ['a view outside the factory', 'new WebContentsView({});', /window-factory/],
    ['raw ipcMain', "ipcMain.handle('x', () => 1);", /registerIpcHandlers/],
    ['sendSync', "ipcRenderer.sendSync('x');", /sendSync/],
    ['ipcRenderer handed to the page', "contextBridge.exposeInMainWorld('x', { ipc: ipcRenderer });", /ipcRenderer/],
    ['openExternal', "shell.openExternal('https://example.invalid');", /openExternal/],
    ['a persistent partition', "session.fromPartition('persist:ws');", /persist/],
  ];
  for (const [name, code, expected] of cases) {
    test(`flags ${name}`, async () => {
      const found = await violations(code);
      assert.ok(
        found.some((m) => expected.test(m)),
        `${code} → ${JSON.stringify(found)}`,
      );
    });
  }

  test('leaves hardened code alone', async () => {
    const code =
      "const p = { sandbox: true, contextIsolation: true, nodeIntegration: false }; ipcRenderer.invoke('x', {});";
    assert.deepEqual(await violations(code), []);
  });

  test('only window-factory.ts constructs windows and views, and only shell/ipc.ts registers IPC handlers', () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) files.push(path);
      }
    };
    walk(join(ROOT, 'main'));
    for (const file of files) {
      const rel = relative(ROOT, file);
      const text = readFileSync(file, 'utf8');
      if (rel !== 'main/shell/window-factory.ts') {
        assert.doesNotMatch(text, /new (BrowserWindow|WebContentsView|BrowserView)\(/, rel);
      }
      if (rel !== 'main/shell/ipc.ts') assert.doesNotMatch(text, /ipcMain\.(handle|on|once)\(/, rel);
      if (!['main/shell-policy/window-options.ts', 'main/shell/window-factory.ts'].includes(rel)) {
        assert.doesNotMatch(text, /webPreferences\s*:/, rel);
      }
    }
  });
});
