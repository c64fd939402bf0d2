/**
 * What `electron` resolves to in the Electron-free projects (main/tsconfig.electron-free.json:
 * main/core and main/shell-policy). Any import of `electron` there — value, type, namespace,
 * side-effect or `import('electron')` — brings this file in, and this line fails to compile. Only
 * main/shell, main/preload and main/index.ts call into Electron.
 */
const electronIsNotAvailableHere: never =
  'main/core and main/shell-policy never import electron: call it from main/shell';
