/**
 * The files of the built operator UI. Kept apart from the build script (which imports esbuild) so
 * the UI host — and with it the packaged agent — never loads a build tool.
 */
export const RENDERER_FILES = ['index.html', 'operator-ui.js', 'operator-ui.css', 'favicon.svg'] as const;
/** The development bridge's client: only in the development build, never served by a production host. */
export const DEV_BRIDGE_CLIENT_FILE = 'dev-bridge-client.js';
