import { DEFAULT_RENDERER_DEV_DIR, DEFAULT_RENDERER_DIR, buildRenderer } from './build-renderer.js';

/** `npm run build:renderer`: the operator UI where the shell serves it from, and the dev page beside it. */
Promise.all([buildRenderer(DEFAULT_RENDERER_DIR), buildRenderer(DEFAULT_RENDERER_DEV_DIR, { development: true })]).then(
  () =>
    process.stdout.write(`operator UI built in ${DEFAULT_RENDERER_DIR} (dev page in ${DEFAULT_RENDERER_DEV_DIR})\n`),
  (error: unknown) => {
    process.stderr.write(`operator UI build failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
