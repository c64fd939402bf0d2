/**
 * `tempDir(prefix)`: a fresh temporary directory, removed when the test process exits (passed or
 * failed). The implementation lives in backend/temp-dir.ts so that backend tests (another TypeScript
 * project) can use it too.
 */
export * from '../../backend/temp-dir.js';
