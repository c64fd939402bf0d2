/**
 * Holds the app's first quit until `stop` has settled (the agent's journal closed with every event
 * recorded so far on disk, the workspaces cleared), then quits again and lets that quit through.
 * A quit asked for meanwhile (a second Ctrl+Q, the last window closing) is held too and starts
 * nothing new. A `stop` that fails still ends in the quit: the failure is `stop`'s to log, and a
 * journal that cannot close gives up after its own bound (CLOSE_TIMEOUT_MS).
 *
 * The shell hands Electron's `before-quit` event to the returned function, and `app.quit` as `quit`.
 */
export function quitGate(stop: () => Promise<unknown>, quit: () => void): (event: { preventDefault(): void }) => void {
  let state: 'running' | 'stopping' | 'stopped' = 'running';
  return (event) => {
    if (state === 'stopped') return;
    event.preventDefault();
    if (state === 'stopping') return;
    state = 'stopping';
    void stop()
      .catch(() => undefined)
      .then(() => {
        state = 'stopped';
        quit();
      });
  };
}
