import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { codeLines, importsElectron, isElectronBound, measure, report } from '../../scripts/electron-share.js';

/** The Electron-bound share printed by `npm test` counts what its header says it counts. */
describe('the Electron-bound share (scripts/electron-share.ts)', () => {
  test('counts lines of code, not blank lines or comments', () => {
    const source = [
      '/**', // 1
      ' * A JSDoc block.', // 2
      ' */', // 3
      'export const a = 1; // trailing comment', // 4
      '', // 5
      '// a line comment', // 6
      '/* a block */ const b = 2;', // 7
      'const url = "http://example.test/x"; /* not', // 8
      '   code */', // 9
    ].join('\n');
    assert.deepEqual(
      [...codeLines(source)].sort((x, y) => x - y),
      [4, 7, 8],
    );
  });

  test('counts every line of a statement or template literal spread over several lines', () => {
    const source = 'const t = `one\ntwo ${1 + 1}\nthree`;\nconst f = (\n  x: number,\n) => x;\n';
    assert.deepEqual(
      [...codeLines(source)].sort((x, y) => x - y),
      [1, 2, 3, 4, 5, 6],
    );
  });

  test('sees every form of electron import, and nothing else', () => {
    for (const source of [
      "import { app } from 'electron';",
      "import type { Session } from 'electron';",
      "export { app } from 'electron';",
      "type C = typeof import('electron').clipboard;",
      "const e = await import('electron');",
      "const e = require('electron');",
      "import { app } from 'electron/main';",
    ]) {
      assert.equal(importsElectron(source), true, source);
    }
    for (const source of [
      "import { x } from './electron.js';",
      "const s = 'electron';",
      "// import { app } from 'electron';",
      "import { y } from 'electron-builder';",
    ]) {
      assert.equal(importsElectron(source), false, source);
    }
  });

  test('binds main/shell, main/preload and main/index.ts whatever they import, and any other importer of electron', () => {
    assert.equal(isElectronBound('main/shell/x.ts', 'export const a = 1;'), true);
    assert.equal(isElectronBound('main/preload/x.ts', 'export const a = 1;'), true);
    assert.equal(isElectronBound('main/index.ts', 'export const a = 1;'), true);
    assert.equal(isElectronBound('main/core/x.ts', "import type { App } from 'electron';"), true);
    assert.equal(isElectronBound('main/shell-policy/x.ts', 'export const a = 1;'), false);
  });

  test('the share is Electron-bound code lines over all code lines, and the report names the bound files', () => {
    const result = measure([
      { path: 'main/shell/a.ts', source: 'const a = 1;\n// c\nconst b = 2;\n' },
      {
        path: 'main/core/b.ts',
        source: 'const a = 1;\nconst b = 2;\nconst c = 3;\n\nconst d = 4;\nconst e = 5;\nconst f = 6;\n',
      },
    ]);
    assert.equal(result.total, 8);
    assert.equal(result.electronBound, 2);
    assert.equal(result.share, 0.25);
    const text = report(result, 0.15);
    assert.match(text, /2 of 8 code lines = 25\.0% \(limit 15\.0%\)/);
    assert.match(text, /main\/shell\/a\.ts/);
    assert.doesNotMatch(text, /main\/core\/b\.ts/);
  });
});
