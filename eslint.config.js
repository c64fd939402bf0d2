// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
  'node:*',
  'fs',
  'path',
  'crypto',
  'http',
  'https',
  'net',
  'os',
  'child_process',
  'worker_threads',
];

/**
 * Imports flow one way: renderer → preload → main/shell → main/shell-policy → main/core → shared;
 * backend → shared; admin → shared.
 */
const restrict = (patterns) => ({
  'no-restricted-imports': [
    'error',
    { patterns: patterns.map((group) => ({ group, message: 'Imports flow one way (see docs/architecture.md).' })) },
  ],
});

/**
 * Electron security rules for main/: no weakened web preferences anywhere; BrowserWindow and
 * WebContentsView built only in main/shell/window-factory.ts; `ipcMain` used only in
 * main/shell/ipc.ts; never `sendSync`, `ipcRenderer` handed to the page, or `shell.openExternal`.
 */
export function electronSecurity() {
  const weakened = [
    ['nodeIntegration', true],
    ['nodeIntegrationInWorker', true],
    ['nodeIntegrationInSubFrames', true],
    ['webviewTag', true],
    ['allowRunningInsecureContent', true],
    ['experimentalFeatures', true],
    ['sandbox', false],
    ['contextIsolation', false],
    ['webSecurity', false],
  ];
  return [
    ...weakened.map(([key, value]) => ({
      selector: `Property[key.name='${key}'][value.value=${value}]`,
      message: `Never set ${key}: ${value} (Electron security; see main/shell-policy/window-options.ts).`,
    })),
    { selector: "MemberExpression[property.name='sendSync']", message: 'No sendSync: use ipcRenderer.invoke.' },
    {
      selector:
        "CallExpression[callee.property.name='exposeInMainWorld'] Identifier[name='ipcRenderer']:not(MemberExpression > Identifier)",
      message: 'Never expose ipcRenderer to the page: expose task-shaped functions.',
    },
    { selector: "MemberExpression[property.name='openExternal']", message: 'No shell.openExternal from the agent.' },
    {
      selector:
        "Property[key.name='partition'] > Literal[value=/^persist:/], CallExpression[callee.property.name='fromPartition'] > Literal[value=/^persist:/]",
      message: 'Baton partitions are in memory: no persist: partitions.',
    },
  ];
}

export const electronConstructors = {
  selector: 'NewExpression[callee.name=/^(BrowserWindow|WebContentsView|BrowserView)$/]',
  message: 'Windows and views are built only in main/shell/window-factory.ts.',
};
export const rawIpcMain = {
  selector: "MemberExpression[object.name='ipcMain'][property.name=/^(handle|handleOnce|on|once|addListener)$/]",
  message: 'IPC handlers are registered only through main/shell/ipc.ts (registerIpcHandlers).',
};

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      '.tmp/',
      'data/',
      'test-results/',
      'playwright-report/',
      'artifacts/',
      '**/*.js',
      '**/*.cjs',
      // Compiled only when something Electron-free imports `electron`, to fail (main/tsconfig.electron-free.json).
      'main/no-electron.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    files: ['shared/**/*.ts'],
    ignores: ['shared/**/*.test.ts'],
    rules: restrict([nodeBuiltins, ['electron', '**/backend/**', '**/main/**', '**/renderer/**']]),
  },
  { files: ['backend/**/*.ts'], rules: restrict([['electron', '**/main/**', '**/renderer/**']]) },
  {
    files: ['main/core/**/*.ts'],
    rules: restrict([
      ['electron', '**/backend/**', '**/renderer/**', '**/shell/**', '**/shell-policy/**', '**/preload/**'],
    ]),
  },
  // The shell's decisions, Electron-free (main/tsconfig.electron-free.json makes the compiler hold it too).
  {
    files: ['main/shell-policy/**/*.ts'],
    rules: restrict([['electron', '**/backend/**', '**/renderer/**', '**/shell/**', '**/preload/**']]),
  },
  { files: ['main/**/*.ts'], rules: restrict([['**/backend/**', '**/renderer/**']]) },
  // The UI server and the dev bridge run without Electron (tests and `npm run agent:dev` use them under plain Node).
  {
    files: ['main/ui/**/*.ts'],
    rules: restrict([['electron', '**/backend/**', '**/renderer/**', '**/shell/**', '**/preload/**']]),
  },
  // Electron security rules (in place of an unmaintained scanner; see docs/adr/0003-electron-shell.md).
  {
    files: ['main/**/*.ts'],
    ignores: ['main/**/*.test.ts'],
    rules: { 'no-restricted-syntax': ['error', ...electronSecurity(), electronConstructors, rawIpcMain] },
  },
  {
    files: ['main/shell/window-factory.ts'],
    rules: { 'no-restricted-syntax': ['error', ...electronSecurity(), rawIpcMain] },
  },
  {
    files: ['main/shell/ipc.ts'],
    rules: { 'no-restricted-syntax': ['error', ...electronSecurity(), electronConstructors] },
  },
  { files: ['renderer/**/*.ts'], rules: restrict([nodeBuiltins, ['electron', '**/backend/**', '**/main/**']]) },
  // The admin console runs in the browser and may import shared/ only.
  {
    files: ['admin/**/*.ts'],
    rules: restrict([nodeBuiltins, ['electron', '**/backend/**', '**/main/**', '**/renderer/**']]),
  },
  {
    // Tests read JSON bodies loosely and assert on them; node:test's describe/it return promises by design.
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts', '**/*.test.ts'],
    rules: {
      'no-console': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'],
            },
          ],
        },
      ],
    },
  },
  {
    // A node:test file's stdout is the test runner's serialized protocol: a stray write there crashes
    // the run at random ("Unable to deserialize cloned data"). Test processes keep off it; child
    // scripts (which the tests spawn with piped stdout) may print.
    files: ['test/integration/**/*.ts', 'test/helpers/**/*.ts', '**/*.test.ts'],
    ignores: ['test/helpers/agent-child.ts', 'test/helpers/outbox-writer.ts'],
    rules: {
      'no-console': ['error', { allow: ['error', 'warn'] }],
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[object.name='process'][property.name='stdout']",
          message: 'Nothing writes to stdout in a test process (it is the node:test protocol channel).',
        },
        {
          selector:
            "Property[key.name='stdio'][value.value='inherit'], Property[key.name='stdio'] > ArrayExpression > Literal:nth-child(2)[value='inherit']",
          message:
            "A child of a test process pipes or ignores its stdout, never 'inherit' (node:test protocol channel).",
        },
      ],
    },
  },
  { files: ['backend/cli.ts'], rules: { 'no-console': 'off' } },
);
