import { OperatorUi } from './operator-ui.js';

/**
 * The operator UI's entry point. `window.baton` comes from the Electron preload, or in development
 * from the dev bridge client loaded before this script; without it the page says so plainly.
 */
function boot(): void {
  const api = window.baton;
  if (api === undefined) {
    const loading = document.getElementById('loading');
    if (loading !== null) loading.textContent = 'This page must be opened by the Baton agent. Please call IT.';
    return;
  }
  // Once its listeners are in place, the page says so: the agent then sends what it held back.
  new OperatorUi(api)
    .start()
    .then(() => api.ready())
    .catch(() => {
      const loading = document.getElementById('loading');
      if (loading !== null) loading.textContent = 'The Baton agent is not answering. Please call IT.';
    });
}

boot();
