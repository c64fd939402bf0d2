import type { Session, WebContents } from 'electron';
import { answerAccountSelection, type AccountPicker } from '../shell-policy/account-picker.js';
import {
  isAllowedFrameNavigation,
  isAllowedNavigation,
  permissionDecision,
  windowOpenDecision,
} from '../shell-policy/navigation.js';

/**
 * Hands Electron's navigation, window, webview, download and permission events to the decisions of
 * main/shell-policy (tested there without Electron). Nothing here decides anything.
 */

/** Guards that apply to every WebContents the app ever creates, whatever it shows. */
export function guardEveryContents(contents: WebContents): void {
  contents.setWindowOpenHandler(windowOpenDecision);
  contents.on('will-attach-webview', (event) => event.preventDefault());
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
 * cancels every usernameless `get()` that returns discoverable credentials.
 */
export function handleAccountSelection(ses: Session, picker: AccountPicker, uiOrigin: string): void {
  ses.on('select-webauthn-account', (_event, details, callback) =>
    answerAccountSelection(details, callback, picker, uiOrigin),
  );
}
