import type { Session, WebContents } from 'electron';
import type { AccountPicker } from './account-picker.js';

/**
 * Navigation, window, webview, download and permission guards. Each takes the Electron object it
 * guards as an argument (no `electron` import at run time), so node:tests drive them with stand-ins
 * and assert what an attacker-controlled page would see: refused.
 */

/** The origin of `url`, or undefined for anything unparsable or opaque (`data:`, `about:blank`). */
export function originOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    const origin = new URL(url).origin;
    return origin === 'null' ? undefined : origin;
  } catch {
    return undefined;
  }
}

/** A surface may only ever show its own origin: the operator UI, or the workspace app. */
export function isAllowedNavigation(url: string, allowedOrigin: string): boolean {
  return originOf(url) === allowedOrigin;
}

/** `window.open`, `target=_blank` and friends: never a new window. */
export function windowOpenDecision(): { action: 'deny' } {
  return { action: 'deny' };
}

/**
 * Permission requests and checks: none is granted. WebAuthn needs no permission in Electron (no
 * permission type exists for it); security keys speak CTAP over Chromium's own FIDO stack, not
 * WebHID/WebUSB, so denying `hid`, `usb` and `serial` costs nothing.
 */
export function permissionDecision(_permission: string): boolean {
  return false;
}

/** Guards that apply to every WebContents the app ever creates, whatever it shows. */
export function guardEveryContents(contents: WebContents): void {
  contents.setWindowOpenHandler(windowOpenDecision);
  contents.on('will-attach-webview', (event) => event.preventDefault());
}

/**
 * The same rule for sub-frames: an iframe may show only the surface's own origin (an embedded page
 * of another origin could phish the operator or frame the workspace). An empty frame
 * (`about:blank`, `about:srcdoc`) inherits its parent's origin and is allowed.
 */
export function isAllowedFrameNavigation(url: string, allowedOrigin: string, isMainFrame: boolean): boolean {
  if (!isMainFrame && (url === 'about:blank' || url === 'about:srcdoc')) return true;
  return isAllowedNavigation(url, allowedOrigin);
}

/**
 * Navigations and redirects, of the main frame and of every sub-frame, never leave `allowedOrigin`;
 * `onRefused` hears each attempt.
 */
export function guardNavigation(
  contents: WebContents,
  allowedOrigin: string,
  onRefused: (url: string, how: 'navigate' | 'frame-navigate' | 'redirect') => void = () => undefined,
): void {
  guardEveryContents(contents);
  contents.on('will-navigate', (event, url) => {
    if (isAllowedNavigation(url, allowedOrigin)) return;
    event.preventDefault();
    onRefused(url, 'navigate');
  });
  // Fired for the main frame and every sub-frame (will-navigate sees only the main frame).
  contents.on('will-frame-navigate', (event) => {
    if (isAllowedFrameNavigation(event.url, allowedOrigin, event.isMainFrame)) return;
    event.preventDefault();
    onRefused(event.url, 'frame-navigate');
  });
  contents.on('will-redirect', (event, url, _isInPlace, isMainFrame) => {
    if (isAllowedFrameNavigation(url, allowedOrigin, isMainFrame)) return;
    event.preventDefault();
    onRefused(url, 'redirect');
  });
}

/** Permission requests and checks denied, device pickers and downloads refused, on one session. */
export function hardenSession(ses: Session): void {
  ses.setPermissionRequestHandler((_contents, permission, callback) => callback(permissionDecision(permission)));
  ses.setPermissionCheckHandler((_contents, permission) => permissionDecision(permission));
  ses.setDevicePermissionHandler(() => false);
  ses.on('will-download', (event) => event.preventDefault());
}

/**
 * `select-webauthn-account` on a session that runs ceremonies: without a listener, Electron ≥ 41.5
 * cancels every usernameless `get()` that returns discoverable credentials. Only the operator UI's
 * top frame gets an account; the callback is called exactly once whatever happens.
 */
export function handleAccountSelection(ses: Session, picker: AccountPicker, uiOrigin: string): void {
  ses.on('select-webauthn-account', (_event, details, callback) => {
    let answered = false;
    const reply = (credentialId: string | null) => {
      if (answered) return;
      answered = true;
      callback(credentialId);
    };
    const frame = details.frame;
    if (frame === null || frame.parent !== null || originOf(frame.url) !== uiOrigin) {
      reply(null);
      return;
    }
    picker.choose(details).then(reply, () => reply(null));
  });
}

/** The part of a BrowserWindow the kiosk close guard needs. */
export interface ClosableWindow {
  on(event: 'close' | 'session-end', listener: (event: { preventDefault(): void }) => void): unknown;
}

/**
 * A kiosk window closes only when Baton quits (or the OS session ends). `closable: false` is not
 * honoured on Linux, and a window manager's Alt+F4 or a close from the taskbar never passes through
 * `before-input-event`: without this, closing the one window quits Baton and leaves the desktop.
 */
export function guardKioskClose(
  window: ClosableWindow,
  quitting: () => boolean,
  onRefused: () => void = () => undefined,
): void {
  let sessionEnding = false;
  window.on('session-end', () => {
    sessionEnding = true;
  });
  window.on('close', (event) => {
    if (quitting() || sessionEnding) return;
    event.preventDefault();
    onRefused();
  });
}
