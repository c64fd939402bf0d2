import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { DEFAULT_RENDERER_DEV_DIR, buildRenderer } from './build-renderer.js';
import { DevBridge } from './dev-bridge.js';
import { DevMemorySecretStore } from './dev-secret-store.js';
import { startDevWorkspace } from './dev-workspace.js';
import { startUiServer } from './ui-server.js';

/**
 * `npm run agent:dev` — DEVELOPMENT ONLY. Runs the real agent core in this Node process against a
 * backend, and serves the operator UI with the dev bridge on http://localhost:<ui-port>/ so it can
 * be used in any Chromium-based browser with a security key (or DevTools' WebAuthn panel). The
 * console key is kept in memory only: every start is a new console. Never part of a packaged build.
 *
 *   npm run agent:dev -- --backend http://localhost:8470 [--token <console token>] [--channel branch-kiosk]
 *                        [--ui-port 8471] [--data-dir <dir>]
 *                        [--workspace <workspace app URL> [--workspace-port 8472]]
 *
 * With --workspace (issue 14), the workspace app is served on http://localhost:<workspace-port>/ with
 * `window.baton` in its pages, the browser stand-in for the workspace preload (./dev-workspace.ts).
 */
const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: process.env.BATON_BACKEND_URL ?? 'http://localhost:8470' },
    token: { type: 'string' },
    channel: { type: 'string', default: 'branch-kiosk' },
    'ui-port': { type: 'string', default: '8471' },
    'data-dir': { type: 'string' },
    workspace: { type: 'string', default: process.env.BATON_AGENT_WORKSPACE_URL },
    'workspace-port': { type: 'string', default: '8472' },
  },
});

async function main(): Promise<void> {
  const logger = pino({ level: process.env.BATON_AGENT_LOG_LEVEL ?? 'info', base: { component: 'agent-dev' } });
  const dataDir = values['data-dir'] ?? mkdtempSync(join(tmpdir(), 'baton-agent-dev-'));
  await buildRenderer(DEFAULT_RENDERER_DEV_DIR, { development: true });
  const ui = await startUiServer({ dir: DEFAULT_RENDERER_DEV_DIR, port: Number(values['ui-port']), devBridge: true });
  const bridge = await DevBridge.start({
    ui,
    agent: {
      backendUrl: values.backend,
      channel: values.channel,
      dataDir,
      agentVersion: '0.1.0-dev',
      ...(values.token === undefined ? {} : { enrolmentToken: values.token }),
    },
    deps: { secrets: new DevMemorySecretStore(), logger },
  });
  const workspace =
    values.workspace === undefined
      ? undefined
      : await startDevWorkspace({ bridge, appUrl: values.workspace, port: Number(values['workspace-port']) });
  process.stdout.write(
    [
      'Baton agent — DEVELOPMENT MODE (dev bridge; console key in memory only; never in a packaged build)',
      `  operator UI: ${ui.url}`,
      `  backend:     ${values.backend} (it must allow the origin ${ui.origin}: --origin ${ui.origin})`,
      `  data dir:    ${dataDir}`,
      ...(workspace === undefined
        ? []
        : [`  workspace:   ${workspace.url} (${values.workspace ?? ''} with window.baton)`]),
      '',
    ].join('\n'),
  );
  const stop = () => {
    void (workspace?.close() ?? Promise.resolve())
      .then(() => bridge.close())
      .then(() => ui.close())
      .finally(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`agent:dev could not start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
