import { ELECTRON_APP_DIR, bundleElectron } from './bundle-electron.js';

/** `npm run build:electron`: bundles the desktop agent into dist/app (no Electron runtime needed). */
const outDir = process.argv[2] ?? ELECTRON_APP_DIR;
bundleElectron(outDir).then(
  (bundle) => process.stdout.write(`desktop agent bundled in ${bundle.dir}\n`),
  (error: unknown) => {
    process.stderr.write(`desktop agent bundle failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
