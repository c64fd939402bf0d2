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
