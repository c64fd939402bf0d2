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

/** Imports flow one way: renderer → preload → main/shell → main/core → shared; backend → shared; admin → shared. */
const restrict = (patterns) => ({
  'no-restricted-imports': [
    'error',
    { patterns: patterns.map((group) => ({ group, message: 'Imports flow one way (see DESIGN.md).' })) },
  ],
});

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
    rules: restrict([['electron', '**/backend/**', '**/renderer/**', '**/shell/**', '**/preload/**']]),
  },
  { files: ['main/**/*.ts'], rules: restrict([['**/backend/**', '**/renderer/**']]) },
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
  { files: ['backend/cli.ts'], rules: { 'no-console': 'off' } },
);
