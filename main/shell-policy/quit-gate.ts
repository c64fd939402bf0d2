/**
 * Holds the app's first quit until `stop` has settled (the agent's journal closed with every event
 * recorded so far on disk, the workspaces cleared), then quits again and lets that quit through.
 * A quit asked for meanwhile (a second Ctrl+Q, the last window closing) is held too and starts
 * nothing new. A `stop` that fails still ends in the quit: the failure is `stop`'s to log, and a
 * journal that cannot close gives up after its own bound (CLOSE_TIMEOUT_MS).
 *
 * A `stop` that has not settled after `deadlineMs` (a workspace or the UI host that never closes)
 * no longer holds the quit: `onDeadline` is called (to log it) and the app quits with whatever that
 * stop had not finished left undone. A kiosk that can never be quit is worse: IT cannot update it.
 *
 * The shell hands Electron's `before-quit` event to the returned function, and `app.quit` as `quit`.
 */
export function quitGate(
  stop: () => Promise<unknown>,
  quit: () => void,
  deadline: { ms: number; onDeadline: () => void },
): (event: { preventDefault(): void }) => void {
  let state: 'running' | 'stopping' | 'stopped' = 'running';
  const finish = (): void => {
    if (state === 'stopped') return;
    state = 'stopped';
    quit();
  };
  return (event) => {
    if (state === 'stopped') return;
    event.preventDefault();
    if (state === 'stopping') return;
    state = 'stopping';
    const timer = setTimeout(() => {
      if (state !== 'stopping') return;
      deadline.onDeadline();
      finish();
    }, deadline.ms);
    void stop()
      .catch(() => undefined)
      .then(() => {
        clearTimeout(timer);
        finish();
      });
  };
}
