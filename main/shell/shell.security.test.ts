import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import type { Session, WebContents } from 'electron';
import { isAllowedNavigation } from '../shell-policy/navigation.js';
import { clearWorkspacePartition } from '../shell-policy/workspaces.js';
import {
  OPERATOR_UI_PARTITION,
  hardenedWebPreferences,
  isBlockedShortcut,
  lockWindowOptions,
  workspacePartition,
} from '../shell-policy/window-options.js';
import { guardNavigation, hardenSession } from './guards.js';
import { FakeSession } from '../../test/helpers/fake-electron-session.js';

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
