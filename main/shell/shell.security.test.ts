import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import type { IpcMain, PowerMonitor, Session, WebContents } from 'electron';
import type { BatonAgent } from '../core/agent.js';
import { CeremonyBroker } from '../core/ceremony-broker.js';
import { IpcDispatcher } from '../core/ipc-dispatcher.js';
import { IPC_CHANNELS, type AccountChoiceRequest, type IpcResult } from '../../shared/ipc.js';
import { FakeClock } from '../../test/helpers/fake-clock.js';
import { AccountPicker } from '../shell-policy/account-picker.js';
import { SenderTable, handleInvoke, identifyCaller, type SenderLike } from '../shell-policy/ipc-callers.js';
import { isAllowedNavigation } from '../shell-policy/navigation.js';
import { throttleActivity, watchPower } from '../shell-policy/power.js';
import { clearWorkspacePartition } from '../shell-policy/workspaces.js';
import {
  OPERATOR_UI_PARTITION,
  hardenedWebPreferences,
  isBlockedShortcut,
  lockWindowOptions,
  workspacePartition,
} from '../shell-policy/window-options.js';
import { guardNavigation, handleAccountSelection, hardenSession } from './guards.js';
import { registerIpcHandlers } from './ipc.js';

const UI = 'http://localhost:8471';
const WS = 'https://workspace.example.test';

/** A stand-in for a WebContents: an EventEmitter with the one method the guards call. */
class FakeContents extends EventEmitter {
  openHandler: ((details: { url: string }) => { action: string }) | undefined;
  setWindowOpenHandler(handler: (details: { url: string }) => { action: string }): void {
    this.openHandler = handler;
  }
  /** Emits like Electron: an event object whose preventDefault the guard may call. */
  attempt(name: string, ...args: unknown[]): boolean {
    let prevented = false;
    this.emit(name, { preventDefault: () => (prevented = true) }, ...args);
    return prevented;
  }
  /** `will-frame-navigate` carries its details on the event itself. */
  attemptFrame(url: string, isMainFrame: boolean): boolean {
    let prevented = false;
    this.emit('will-frame-navigate', {
      url,
      isMainFrame,
      isSameDocument: false,
      preventDefault: () => (prevented = true),
    });
    return prevented;
  }
}

class FakeSession extends EventEmitter {
  request: ((c: unknown, permission: string, callback: (granted: boolean) => void) => void) | undefined;
  check: ((c: unknown, permission: string) => boolean) | undefined;
  device: (() => boolean) | undefined;
  setPermissionRequestHandler(h: FakeSession['request']) {
    this.request = h;
  }
  setPermissionCheckHandler(h: FakeSession['check']) {
    this.check = h;
  }
  setDevicePermissionHandler(h: FakeSession['device']) {
    this.device = h;
  }
}

const PRELOAD = '/opt/baton/resources/app.asar/preload/operator-ui.cjs';

describe('every window and view is built with hardened preferences', () => {
  for (const kind of ['operator-ui', 'workspace'] as const) {
    test(`${kind}: sandboxed, isolated, no Node, web security on, no webview, no spellcheck`, () => {
      const prefs = hardenedWebPreferences(kind, { preload: PRELOAD, packaged: true, partition: 'ws-a' });
      assert.equal(prefs.sandbox, true);
      assert.equal(prefs.contextIsolation, true);
      assert.equal(prefs.nodeIntegration, false);
      assert.equal(prefs.nodeIntegrationInWorker, false);
      assert.equal(prefs.nodeIntegrationInSubFrames, false);
      assert.equal(prefs.webSecurity, true);
      assert.equal(prefs.allowRunningInsecureContent, false);
      assert.equal(prefs.webviewTag, false);
      assert.equal(prefs.experimentalFeatures, false);
      assert.equal(prefs.spellcheck, false);
      assert.equal(prefs.devTools, false, 'no developer tools in packaged builds');
      assert.equal(prefs.preload, PRELOAD);
    });
  }

  test('developer tools only in unpackaged builds; a persistent partition is refused', () => {
    assert.equal(
      hardenedWebPreferences('operator-ui', { preload: PRELOAD, packaged: false, partition: 'x' }).devTools,
      true,
    );
    assert.throws(() =>
      hardenedWebPreferences('workspace', { preload: PRELOAD, packaged: true, partition: 'persist:ws-a' }),
    );
  });

  test('each session gets its own in-memory partition, and a crafted session id cannot pick another', () => {
    assert.equal(workspacePartition('ses_1'), 'ws-ses_1');
    assert.ok(!workspacePartition('ses_1').startsWith('persist:'));
    assert.throws(() => workspacePartition('../baton-ui'));
    assert.throws(() => workspacePartition(''));
    assert.notEqual(workspacePartition('ses_1'), OPERATOR_UI_PARTITION);
  });

  test('a branch kiosk is full screen with no frame, no menu and cannot be closed; a desktop gets a normal window', () => {
    const kiosk = lockWindowOptions({ kiosk: true, packaged: true, preload: PRELOAD });
    assert.equal(kiosk.kiosk, true);
    assert.equal(kiosk.fullscreen, true);
    assert.equal(kiosk.frame, false);
    assert.equal(kiosk.closable, false);
    assert.equal(kiosk.minimizable, false);
    assert.equal(kiosk.webPreferences?.sandbox, true);
    assert.equal(kiosk.webPreferences?.partition, OPERATOR_UI_PARTITION);
    const desk = lockWindowOptions({ kiosk: false, packaged: true, preload: PRELOAD });
    assert.equal(desk.kiosk, undefined);
    assert.equal(desk.fullscreen, undefined);
    assert.equal(desk.webPreferences?.contextIsolation, true);
  });

  test('escape shortcuts are blocked in a kiosk; typing, Tab and Escape still reach the page', () => {
    const key = (k: string, mods: Partial<Record<'control' | 'meta' | 'alt' | 'shift', boolean>> = {}) => ({
      type: 'keyDown',
      key: k,
      control: false,
      meta: false,
      alt: false,
      shift: false,
      ...mods,
    });
    for (const input of [
      key('F4', { alt: true }),
      key('w', { control: true }),
      key('R', { control: true }),
      key('F11'),
      key('F12'),
      key('I', { control: true, shift: true }),
      key('q', { meta: true }),
      key('F5'),
    ]) {
      assert.equal(isBlockedShortcut(input, true), true, JSON.stringify(input));
    }
    for (const input of [key('a'), key('Tab'), key('Escape'), key('Enter'), key('c', { control: true })]) {
      assert.equal(isBlockedShortcut(input, true), false, JSON.stringify(input));
    }
    // A contact-centre desktop may close its window, but never reload or open dev tools.
    assert.equal(isBlockedShortcut(key('F4', { alt: true }), false), false);
    assert.equal(isBlockedShortcut(key('r', { control: true }), false), true);
    assert.equal(isBlockedShortcut({ ...key('F12'), type: 'keyUp' }, true), false);
  });
});

describe('navigation, new windows, webviews and permissions are refused', () => {
  test('the lock window never leaves the UI origin, a workspace never leaves its app', () => {
    const ui = new FakeContents();
    const refused: string[] = [];
    guardNavigation(ui as unknown as WebContents, UI, (url, how) => refused.push(`${how} ${url}`));
    assert.equal(ui.attempt('will-navigate', 'https://evil.example.test/phish'), true);
    assert.equal(ui.attempt('will-navigate', 'http://localhost:9999/'), true, 'another port is another origin');
    assert.equal(ui.attempt('will-navigate', 'file:///etc/passwd'), true);
    assert.equal(ui.attempt('will-navigate', 'javascript:alert(1)'), true);
    assert.equal(ui.attempt('will-navigate', `${UI}/index.html`), false);
    assert.equal(ui.attempt('will-redirect', 'https://evil.example.test/', false, true), true);
    assert.equal(refused.length, 5);

    const ws = new FakeContents();
    guardNavigation(ws as unknown as WebContents, WS);
    assert.equal(ws.attempt('will-navigate', `${UI}/`), true, 'a workspace cannot load the operator UI');
    assert.equal(ws.attempt('will-navigate', `${WS}/customers/42`), false);
    assert.equal(ws.attempt('will-redirect', 'https://sso.example.test/', false, false), true, 'nor can its iframes');
    assert.equal(ws.attempt('will-redirect', `${WS}/after-login`, false, false), false);
  });

  test('sub-frames follow the same rule: an iframe never loads another origin, however it gets there', () => {
    const ws = new FakeContents();
    const refused: string[] = [];
    guardNavigation(ws as unknown as WebContents, WS, (url, how) => refused.push(`${how} ${url}`));
    assert.equal(ws.attemptFrame('https://evil.example.test/login', false), true, 'a sub-frame to another origin');
    assert.equal(ws.attemptFrame(`${UI}/`, false), true, 'a workspace iframe cannot load the operator UI');
    assert.equal(ws.attemptFrame('javascript:alert(1)', false), true);
    assert.equal(ws.attemptFrame('https://evil.example.test/', true), true, 'the main frame too');
    assert.equal(ws.attemptFrame(`${WS}/widgets/map`, false), false);
    assert.equal(ws.attemptFrame('about:blank', false), false, 'an empty frame inherits its parent’s origin');
    assert.equal(ws.attemptFrame('about:blank', true), true, 'but the main frame stays on its origin');
    assert.deepEqual(refused, [
      'frame-navigate https://evil.example.test/login',
      `frame-navigate ${UI}/`,
      'frame-navigate javascript:alert(1)',
      'frame-navigate https://evil.example.test/',
      'frame-navigate about:blank',
    ]);
  });

  test('a workspace that ends leaves nothing of its operator in its partition, auth cache included', async () => {
    const cleared: string[] = [];
    const step =
      (name: string, fail = false) =>
      () => {
        cleared.push(name);
        return fail ? Promise.reject(new Error(`${name} failed`)) : Promise.resolve();
      };
    await clearWorkspacePartition({
      clearStorageData: step('storage'),
      clearCache: step('cache'),
      clearAuthCache: step('auth-cache'),
      closeAllConnections: step('connections'),
    });
    assert.deepEqual(cleared.sort(), ['auth-cache', 'cache', 'connections', 'storage']);
    cleared.length = 0;
    await assert.rejects(
      clearWorkspacePartition({
        clearStorageData: step('storage', true),
        clearCache: step('cache'),
        clearAuthCache: step('auth-cache'),
        closeAllConnections: step('connections'),
      }),
      /storage failed/,
    );
    assert.deepEqual(cleared.sort(), ['auth-cache', 'cache', 'connections', 'storage'], 'one failure skips nothing');
  });

  test('window.open is denied and <webview> cannot attach', () => {
    const contents = new FakeContents();
    guardNavigation(contents as unknown as WebContents, UI);
    assert.deepEqual(contents.openHandler?.({ url: `${UI}/` }), { action: 'deny' });
    assert.deepEqual(contents.openHandler?.({ url: 'https://evil.example.test/' }), { action: 'deny' });
    assert.equal(contents.attempt('will-attach-webview', {}, {}), true);
  });

  test('no permission is granted, asked or checked; downloads are refused', () => {
    const ses = new FakeSession();
    hardenSession(ses as unknown as Session);
    for (const permission of [
      'media',
      'geolocation',
      'notifications',
      'hid',
      'usb',
      'serial',
      'fullscreen',
      'openExternal',
    ]) {
      let granted: boolean | undefined;
      ses.request?.({}, permission, (g) => (granted = g));
      assert.equal(granted, false, permission);
      assert.equal(ses.check?.({}, permission), false, permission);
    }
    assert.equal(ses.device?.(), false);
    let prevented = false;
    ses.emit('will-download', { preventDefault: () => (prevented = true) });
    assert.equal(prevented, true);
  });

  test('origins are compared exactly', () => {
    assert.equal(isAllowedNavigation('http://localhost:8471/x?y#z', UI), true);
    assert.equal(isAllowedNavigation('http://127.0.0.1:8471/', UI), false);
    assert.equal(isAllowedNavigation('http://localhost:8471.evil.example.test/', UI), false);
    assert.equal(isAllowedNavigation('not a url', UI), false);
  });
});

describe('select-webauthn-account: one account is used, several get Baton’s picker', () => {
  const frame = (url: string, parent: unknown = null) => ({ url, parent });

  function setup() {
    const clock = new FakeClock();
    const pushed: AccountChoiceRequest[] = [];
    const picker = new AccountPicker((r) => pushed.push(r), clock);
    const ses = new FakeSession();
    handleAccountSelection(ses as unknown as Session, picker, UI);
    const select = (details: object) =>
      new Promise<string | null | undefined>((resolve) => ses.emit('select-webauthn-account', {}, details, resolve));
    return { clock, pushed, picker, select };
  }

  const two = [
    { credentialId: 'cred-nia', name: 'nia', displayName: 'Nia' },
    { credentialId: 'cred-oz', name: 'oz', displayName: 'Oz' },
  ];

  test('a single discoverable credential is chosen at once, without asking', async () => {
    const { select, pushed } = setup();
    assert.equal(await select({ relyingPartyId: 'localhost', accounts: [two[0]], frame: frame(`${UI}/`) }), 'cred-nia');
    assert.equal(pushed.length, 0);
  });

  test('several credentials on one key: the operator picks in Baton’s UI', async () => {
    const { select, pushed, picker } = setup();
    const answer = select({ relyingPartyId: 'localhost', accounts: two, frame: frame(`${UI}/`) });
    assert.equal(pushed.length, 1);
    const request = pushed[0] as AccountChoiceRequest;
    assert.deepEqual(
      request.accounts.map((a) => a.displayName),
      ['Nia', 'Oz'],
    );
    assert.throws(() => picker.answer({ requestId: request.requestId, credentialId: 'cred-mallory' }), /offered/);
    picker.answer({ requestId: request.requestId, credentialId: 'cred-oz' });
    assert.equal(await answer, 'cred-oz');
    assert.throws(() => picker.answer({ requestId: request.requestId, credentialId: 'cred-oz' }), /No account choice/);
  });

  test('a ceremony from another origin or a subframe gets no account; nobody choosing in time cancels', async () => {
    const { select, clock, pushed } = setup();
    assert.equal(await select({ relyingPartyId: 'localhost', accounts: two, frame: frame(WS) }), null);
    assert.equal(await select({ relyingPartyId: 'localhost', accounts: two, frame: frame(`${UI}/`, {}) }), null);
    assert.equal(await select({ relyingPartyId: 'localhost', accounts: two, frame: null }), null);
    assert.equal(pushed.length, 0);
    const answer = select({ relyingPartyId: 'localhost', accounts: two, frame: frame(`${UI}/`) });
    await clock.advance(60_001);
    assert.equal(await answer, null);
  });
});

describe('IPC: only the expected frame may call, with arguments the contract accepts', () => {
  const registry = new SenderTable(UI, WS);
  registry.addOperatorUi(1);
  registry.addWorkspace(2, 'ses_a');
  const top = (webContentsId: number, url: string): SenderLike => ({ webContentsId, frame: { url, isTopFrame: true } });

  test('the lock window’s top frame on the UI origin is the operator UI; a workspace view is its session', () => {
    assert.deepEqual(identifyCaller(top(1, `${UI}/`), registry), { kind: 'operator-ui' });
    assert.deepEqual(identifyCaller(top(2, `${WS}/app`), registry), { kind: 'workspace', sessionId: 'ses_a' });
  });

  test('a subframe, another origin, an unknown WebContents or a vanished frame is refused', () => {
    assert.equal(
      identifyCaller({ webContentsId: 1, frame: { url: `${UI}/`, isTopFrame: false } }, registry),
      undefined,
    );
    assert.equal(identifyCaller(top(1, 'https://evil.example.test/'), registry), undefined);
    assert.equal(identifyCaller(top(1, 'http://localhost:9999/'), registry), undefined);
    assert.equal(identifyCaller(top(1, 'data:text/html,hi'), registry), undefined);
    assert.equal(identifyCaller(top(2, `${UI}/`), registry), undefined, 'a workspace navigated to the UI origin');
    assert.equal(identifyCaller(top(3, `${UI}/`), registry), undefined, 'a WebContents Baton did not make');
    assert.equal(identifyCaller({ webContentsId: 1, frame: null }, registry), undefined);
  });

  function dispatcher(picker = new AccountPicker(() => undefined, new FakeClock())) {
    // The agent is never reached: every call below is refused before any work.
    return new IpcDispatcher({} as BatonAgent, new CeremonyBroker(() => undefined, new FakeClock()), picker);
  }
  const refused = (result: IpcResult<unknown>, code: string) => {
    assert.equal(result.ok, false, JSON.stringify(result));
    assert.equal(!result.ok && result.error.code, code, JSON.stringify(result));
  };

  test('an unexpected frame is refused before the dispatcher sees anything', async () => {
    let reached = 0;
    const spy = { dispatch: () => Promise.resolve((reached++, { ok: true, value: {} }) as IpcResult<unknown>) };
    const seen: string[] = [];
    const sub = { webContentsId: 1, frame: { url: `${UI}/`, isTopFrame: false } };
    refused(await handleInvoke('session:tap-in', sub, [{}], spy, registry, (c) => seen.push(c)), 'NOT_FOUND');
    refused(await handleInvoke('session:tap-in', top(9, `${UI}/`), [{}], spy, registry), 'NOT_FOUND');
    assert.equal(reached, 0);
    assert.deepEqual(seen, ['session:tap-in']);
  });

  test('bad arguments are refused by the contract: wrong shape, extra fields, extra arguments', async () => {
    const d = dispatcher();
    const ui = top(1, `${UI}/`);
    refused(await handleInvoke('action:authorize', ui, [{ action: '../../etc' }], d, registry), 'SCHEMA_INVALID');
    refused(await handleInvoke('session:tap-in', ui, [{ operator: 'someone-else' }], d, registry), 'SCHEMA_INVALID');
    refused(await handleInvoke('session:tap-in', ui, [{}, { more: 1 }], d, registry), 'SCHEMA_INVALID');
    refused(
      await handleInvoke('ceremony:account-chosen', ui, [{ requestId: 'x', credentialId: 1 }], d, registry),
      'SCHEMA_INVALID',
    );
    refused(await handleInvoke('agent:shutdown', ui, [{}], d, registry), 'NOT_FOUND');
  });

  test('a workspace reaches only its two channels', async () => {
    const d = dispatcher();
    refused(await handleInvoke('session:sign-out', top(2, `${WS}/`), [{}], d, registry), 'NOT_FOUND');
    refused(await handleInvoke('ceremony:account-chosen', top(2, `${WS}/`), [{}], d, registry), 'NOT_FOUND');
  });

  test('the operator’s account pick reaches the picker through the contract', async () => {
    const pushed: AccountChoiceRequest[] = [];
    const picker = new AccountPicker((r) => pushed.push(r), new FakeClock());
    const chosen = picker.choose({
      relyingPartyId: 'localhost',
      accounts: [{ credentialId: 'a' }, { credentialId: 'b' }],
    });
    const requestId = (pushed[0] as AccountChoiceRequest).requestId;
    const result = await handleInvoke(
      'ceremony:account-chosen',
      top(1, `${UI}/`),
      [{ requestId, credentialId: 'b' }],
      dispatcher(picker),
      registry,
    );
    assert.deepEqual(result, { ok: true, value: {} });
    assert.equal(await chosen, 'b');
  });

  test('every channel of the contract is registered with ipcMain.handle, and removed again', () => {
    const handled: string[] = [];
    const removed: string[] = [];
    const ipcMain = {
      handle: (channel: string) => handled.push(channel),
      removeHandler: (channel: string) => removed.push(channel),
    };
    const unregister = registerIpcHandlers(ipcMain as unknown as IpcMain, dispatcher(), registry);
    assert.deepEqual(handled.sort(), [...IPC_CHANNELS].sort());
    unregister();
    assert.deepEqual(removed.sort(), [...IPC_CHANNELS].sort());
  });
});

describe('idle and lock signals reach the agent', () => {
  test('system idle time is polled, an OS lock or a suspend locks at once, and stopping detaches', () => {
    const power = Object.assign(new EventEmitter(), { idle: 0, getSystemIdleTime: () => power.idle });
    const calls: string[] = [];
    const agent = {
      reportSystemIdle: (s: number) => calls.push(`idle ${s}`),
      osLocked: () => calls.push('locked'),
    };
    let tick: (() => void) | undefined;
    const stop = watchPower(power as unknown as PowerMonitor, agent, {
      every: (_ms, fn) => ((tick = fn), () => (tick = undefined)),
    });
    power.idle = 42;
    tick?.();
    power.emit('lock-screen');
    power.emit('suspend');
    assert.deepEqual(calls, ['idle 42', 'locked', 'locked']);
    stop();
    power.emit('lock-screen');
    assert.equal(tick, undefined);
    assert.equal(calls.length, 3);
  });

  test('input activity reaches the agent at most once a second', async () => {
    const clock = new FakeClock();
    let notes = 0;
    const note = throttleActivity(() => notes++, clock);
    for (let i = 0; i < 50; i++) note();
    await clock.advance(999);
    note();
    await clock.advance(1);
    note();
    assert.equal(notes, 2);
  });

  test('a wall clock set back does not swallow input (the operator would be idle-locked while typing)', async () => {
    const clock = new FakeClock();
    let notes = 0;
    const note = throttleActivity(() => notes++, clock);
    note();
    clock.shiftWall(-3_600_000);
    await clock.advance(1000);
    note();
    assert.equal(notes, 2);
  });
});
