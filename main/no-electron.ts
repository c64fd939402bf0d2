/**
 * What `electron` resolves to in the Electron-free project (main/tsconfig.electron-free.json:
 * main/core, main/shell-policy, main/ui and main/headless.ts). Any import of `electron` there — value, type, namespace,
 * side-effect or `import('electron')` — brings this file in, and this line fails to compile. Only
 * main/shell, main/preload and main/index.ts call into Electron.
 */
const electronIsNotAvailableHere: never =
  'main/core and main/shell-policy never import electron: call it from main/shell';
