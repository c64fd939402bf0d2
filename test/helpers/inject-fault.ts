/**
 * Preloaded (`--import`) into a real backend process by the fault tests, never by the product: on
 * SIGUSR2 it raises the fault named in BATON_TEST_FAULT, as a path that failed to contain its
 * error would: `rejection` (a promise rejected with no handler) or `exception` (a throw from a
 * timer callback).
 */
process.on('SIGUSR2', () => {
  if (process.env.BATON_TEST_FAULT === 'rejection') {
    void Promise.reject(new Error('injected: a rejection nobody handles'));
  } else {
    setImmediate(() => {
      throw new Error('injected: an exception nobody catches');
    });
  }
});
