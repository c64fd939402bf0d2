import { join } from 'node:path';
import { Menu, app, clipboard, dialog, ipcMain, powerMonitor } from 'electron';
import pino from 'pino';
import { BatonError } from '../shared/errors.js';
import { BatonAgent } from './core/agent.js';
import { loadAgentConfig, type AgentConfig } from './core/agent-config.js';
import { CeremonyBroker } from './core/ceremony-broker.js';
import { systemClock } from './core/clock.js';
import { IpcDispatcher, statusView } from './core/ipc-dispatcher.js';
import { CLOSE_TIMEOUT_MS } from './core/journal-writer.js';
import { AccountPicker } from './shell-policy/account-picker.js';
import { ClipboardGuard } from './shell-policy/clipboard-guard.js';
import { SenderTable } from './shell-policy/ipc-callers.js';
import { OperatorUiLifecycle } from './shell-policy/operator-ui-lifecycle.js';
import { throttleActivity, watchPower } from './shell-policy/power.js';
import { quitGate } from './shell-policy/quit-gate.js';
import { readBuildFlavour, testBuildRefusal } from './shell-policy/test-build-guard.js';
import { WorkspaceManager } from './shell-policy/workspaces.js';
import { EventPusher } from './shell/event-pusher.js';
import { guardEveryContents } from './shell/guards.js';
import { registerIpcHandlers } from './shell/ipc.js';
import { openSecretStore } from './shell/secret-store.js';
import { WindowFactory } from './shell/window-factory.js';
import { startUiServer } from './ui/ui-server.js';

/**
 * The desktop agent's composition root: wires the agent core to Electron and does nothing else.
 * Nothing runs on import except the app lifecycle below. Layout of the bundled app (see
 * build/bundle-electron.ts): main/index.cjs, preload/*.cjs and renderer/ under the app path.
 */

let focusWindow: (() => void) | undefined;
/** How long a quit waits for the agent, the workspaces and the UI host to stop before it goes through anyway. */
const QUIT_DEADLINE_MS = CLOSE_TIMEOUT_MS + 5_000;
/** Set at `before-quit`: from then on the kiosk window may close. */
let quitting = false;

function fail(title: string, error: unknown, exitCode: number): void {
  const baton = error instanceof BatonError ? error : new BatonError('INTERNAL', String(error), { cause: error });
  dialog.showErrorBox(title, `${baton.message} (${baton.code})`);
  app.exit(exitCode);
}

async function start(): Promise<void> {
  let config: AgentConfig;
  try {
    config = loadAgentConfig({ platform: process.platform, env: process.env, packaged: app.isPackaged });
  } catch (error) {
    fail('Baton cannot start: the configuration from IT is missing or wrong', error, 78);
    return;
  }
  // The test build (inspector fuse on) starts only when asked to explicitly, and never as a kiosk.
  const refusal = testBuildRefusal(readBuildFlavour(app.getAppPath()), config, process.env);
  if (refusal !== undefined) {
    dialog.showErrorBox('Baton test build', refusal);
    app.exit(78);
    return;
  }
  const logger = pino({ level: config.logLevel, base: { component: 'agent-shell' } });
  if (config.kiosk) Menu.setApplicationMenu(null);

  const appPath = app.getAppPath();
  const ui = await startUiServer({ dir: join(appPath, 'renderer'), port: Number(new URL(config.origin).port || 80) });
  if (ui.origin !== config.origin) {
    await ui.close();
    fail(
      'Baton cannot start',
      new BatonError('INTERNAL', `The operator UI is on ${ui.origin}, not ${config.origin}`),
      70,
    );
    return;
  }

  const senders = new SenderTable(config.origin, new URL(config.workspaceAppUrl).origin);
  // Events wait for the lock window to load (the agent may report status before that), then go in order.
  const pusher = new EventPusher((message, detail) => logger.warn(detail, message));
  const push = (event: 'agent:status' | 'ceremony:request' | 'ceremony:choose-account', payload: unknown) =>
    void pusher.push(event, payload);
  const broker = new CeremonyBroker((request) => push('ceremony:request', request), systemClock);
  const picker = new AccountPicker((request) => push('ceremony:choose-account', request), systemClock);

  const agent = await BatonAgent.start(
    {
      backendUrl: config.backendUrl,
      channel: config.channel,
      rpId: config.rpId,
      origin: config.origin,
      dataDir: config.dataDir,
      agentVersion: app.getVersion(),
      ...(config.enrolmentToken === undefined ? {} : { enrolmentToken: config.enrolmentToken }),
    },
    { secrets: await openSecretStore(config.secretStore, config.dataDir), ceremonies: broker, logger },
  );

  const factory = new WindowFactory({
    kiosk: config.kiosk,
    packaged: app.isPackaged,
    uiOrigin: config.origin,
    workspaceAppUrl: config.workspaceAppUrl,
    preloads: {
      operatorUi: join(appPath, 'preload', 'operator-ui.cjs'),
      workspace: join(appPath, 'preload', 'workspace.cjs'),
    },
    picker,
    senders,
    onActivity: throttleActivity(() => agent.noteActivity(), systemClock),
    onRefused: (what, detail) => logger.warn({ ...detail }, `shell guard: ${what}`),
    quitting: () => quitting,
  });
  const lockWindow = factory.createLockWindow();
  pusher.attach(lockWindow.webContents);
  focusWindow = () => {
    if (lockWindow.isMinimized()) lockWindow.restore();
    lockWindow.focus();
  };

  // The page calls `ui:ready` once it has subscribed to its events: held pushes go then (not at
  // `did-finish-load`, which fires before the page's script has necessarily subscribed).
  const dispatcher = new IpcDispatcher(agent, broker, picker, () => operatorUi.loaded());
  registerIpcHandlers(ipcMain, dispatcher, senders, (channel, sender) =>
    logger.warn({ channel, webContentsId: sender.webContentsId }, 'IPC call from an unexpected frame refused'),
  );
  const workspaces = new WorkspaceManager(factory.workspaceHost(lockWindow), (sessionId, error) =>
    logger.error({ sessionId, error: String(error) }, 'a workspace could not be cleared'),
  );
  // Operator A's copied customer data never reaches operator B: cleared at lock, switch, end, start and quit.
  const clipboardGuard = new ClipboardGuard(clipboard, (reason) => logger.info({ reason }, 'clipboard cleared'));
  const operatorUi = new OperatorUiLifecycle({
    pusher,
    ceremonies: broker,
    picker,
    clipboard: clipboardGuard,
    workspaces,
    pushStatus: (view) => push('agent:status', view),
    currentStatus: () => statusView(agent.status),
  });
  agent.onStatus(() => operatorUi.statusChanged());
  const stopPower = watchPower(powerMonitor, agent);

  lockWindow.webContents.on('did-start-navigation', (details) => operatorUi.navigationStarted(details));
  lockWindow.webContents.on('render-process-gone', (_event, details) => {
    logger.error({ reason: details.reason }, 'the operator UI stopped; reloading it');
    operatorUi.rendererGone();
    lockWindow.webContents.reload();
  });
  lockWindow.once('ready-to-show', () => lockWindow.show());
  await lockWindow.loadURL(`${ui.origin}/`);

  app.on(
    'before-quit',
    quitGate(
      () => {
        clipboardGuard.clear('quitting');
        stopPower();
        return Promise.allSettled([
          agent.stop(),
          workspaces
            .destroyAll()
            .catch((error: unknown) => logger.error({ error: String(error) }, 'workspaces not cleared')),
          ui.close().catch((error: unknown) => logger.error({ error: String(error) }, 'UI host did not close')),
        ]);
      },
      () => app.quit(),
      {
        // Past the journal's own close bound: only a part that never settles gets here.
        ms: QUIT_DEADLINE_MS,
        onDeadline: () => logger.error({ code: 'QUIT_DEADLINE' }, 'quitting before the shutdown finished'),
      },
    ),
  );
}

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.on('second-instance', () => focusWindow?.());
  app.on('before-quit', () => {
    quitting = true;
  });
  app.on('web-contents-created', (_event, contents) => guardEveryContents(contents));
  app.on('window-all-closed', () => app.quit());
  app
    .whenReady()
    .then(start)
    .catch((error: unknown) => fail('Baton cannot start', error, 70));
}
