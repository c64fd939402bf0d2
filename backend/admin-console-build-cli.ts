import { DEFAULT_ADMIN_CONSOLE_DIR } from './http/admin-assets.js';
import { buildAdminConsole } from './admin-console-build.js';

/** `npm run build:admin`: bundles the admin console where the backend serves it from by default. */
const outDir = process.argv[2] ?? DEFAULT_ADMIN_CONSOLE_DIR;
buildAdminConsole(outDir).then(
  () => process.stdout.write(`admin console built in ${outDir}\n`),
  (error: unknown) => {
    process.stderr.write(`admin console build failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
