// Child process for test/helpers/electron-builder-config.ts: loads electron-builder configurations
// with electron-builder's own loader (extends resolved) and checks them against its own schema.
// electron-builder logs (`• loaded configuration …`) to stdout; here that is this child's stdout,
// a pipe the parent reads, never the stdout of a `node --test` process (which is the test runner's
// own serialized protocol). The outcome goes back over the IPC channel, one message.
//
// usage: electron-builder-config-child.ts '<json: [{ "file": "build/x.json", "override"?: {…} }, …]>'
import { createRequire } from 'node:module';
import { join } from 'node:path';

interface Job {
  file: string;
  override?: Record<string, unknown>;
}

const ROOT = join(import.meta.dirname, '..', '..');
const require = createRequire(import.meta.url);
const loader = require(join(ROOT, 'node_modules/app-builder-lib/out/util/config/config.js')) as {
  getConfig(projectDir: string, configPath: string, fromOptions: null): Promise<Record<string, unknown>>;
  validateConfiguration(config: unknown, debug: { isEnabled: boolean; add(): void }): Promise<void>;
};
const quiet = { isEnabled: false, add: () => undefined };

const jobs = JSON.parse(process.argv[2] ?? '[]') as Job[];
const outcomes: ({ ok: true; config: unknown } | { ok: false; error: string })[] = [];
for (const job of jobs) {
  try {
    const config = { ...(await loader.getConfig(ROOT, job.file, null)), ...job.override };
    await loader.validateConfiguration(config, quiet);
    outcomes.push({ ok: true, config });
  } catch (error) {
    outcomes.push({ ok: false, error: error instanceof Error ? error.message : String(error) });
  }
}
if (process.send === undefined) throw new Error('run me with an IPC channel (see electron-builder-config.ts)');
process.send(outcomes, undefined, {}, () => process.disconnect());
