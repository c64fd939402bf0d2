/**
 * What a Baton surface may load, open and be granted. Pure decisions: main/shell/guards.ts hands
 * Electron's navigation, window-open and permission events to them, and tests drive them directly
 * with what an attacker-controlled page would try.
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

/** The origin of `url` for a log line (never the path or query: they may name a customer). */
export function originForLog(url: string): string {
  return originOf(url) ?? '(unparsable)';
}

/** A surface may only ever show its own origin: the operator UI, or the workspace app. */
export function isAllowedNavigation(url: string, allowedOrigin: string): boolean {
  return originOf(url) === allowedOrigin;
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
