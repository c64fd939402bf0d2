import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReconnectLoop } from './reconnect.js';

describe('ReconnectLoop (the revocation followers shared retry loop)', () => {
  it(
    'retries a failed attempt, reports each failure, counts down time from the drop, and stops when closed',
    { timeout: 10_000 },
    async (t) => {
      // The loop's retry timers are unref'd (a follower never keeps an app alive): hold the test's loop open, and let go
      // of it however the test ends (an assertion failed, the timeout), so a failure is reported at once, not a hang.
      const keepAlive = setInterval(() => undefined, 60_000);
      let now = 1_000;
      const errors: string[] = [];
      const loop = new ReconnectLoop(() => now, { retryMs: 1, maxRetryMs: 2, onError: (e) => errors.push(e.message) });
      t.after(() => {
        loop.close();
        clearInterval(keepAlive);
      });
      let attempts = 0;
      let downAtHello: number | undefined;
      let dropped!: () => void;
      const droppedOnce = new Promise<void>((resolve) => (dropped = resolve));
      let closedDuring!: () => void;
      const lastAttempt = new Promise<void>((resolve) => (closedDuring = resolve));
      const done = loop.run(async () => {
        await Promise.resolve(); // an attempt is asynchronous (a fetch)
        attempts++;
        if (attempts <= 2) throw new Error(`refused ${attempts}`);
        if (attempts === 3) {
          loop.up(); // the stream's hello
          downAtHello = loop.downForMs(); // asserted below: an assertion failing in here would only be retried
          now = 5_000;
          throw new Error('stream ended');
        }
        if (attempts === 4) {
          dropped();
          return; // a poll answered: the next one follows at once
        }
        loop.close();
        closedDuring();
      });
      /** Waits for a step of the attempts above; fails at once if the loop ends before it (it would never come). */
      const reached = (step: Promise<void>, what: string) =>
        Promise.race([
          step,
          done.then(() => {
            throw new Error(`the loop ended after ${attempts} attempts, before ${what}`);
          }),
        ]);
      await reached(droppedOnce, 'the fourth attempt');
      assert.equal(downAtHello, 0, 'connected: not down');
      assert.deepEqual(errors, ['refused 1', 'refused 2', 'stream ended']);
      assert.equal(loop.connected, false, 'a drop ends the connection');
      now = 5_300;
      assert.equal(loop.downForMs(), 300, 'down since the drop, not since the start');
      await reached(lastAttempt, 'the fifth attempt');
      await done;
      assert.equal(attempts, 5);
      assert.equal(loop.closed, true);
    },
  );

  it('is down from the moment it is closed: a verifier still holding a closed follower refuses once the lag passes', () => {
    let now = 10_000;
    const loop = new ReconnectLoop(() => now);
    loop.up();
    now = 12_000;
    assert.equal(loop.downForMs(), 0, 'connected: not down');
    loop.close();
    assert.equal(loop.connected, false, 'closed: no longer hearing revocations');
    now = 19_500;
    assert.equal(loop.downForMs(), 7_500, 'down since the close, not 0');
    loop.up(); // a poll answered after the close (its fetch was already read)
    assert.equal(loop.connected, false, 'an answer after the close does not connect a closed follower');
    assert.equal(loop.downForMs(), 7_500);
  });

  it('is down from its start until the first connection', () => {
    let now = 0;
    const loop = new ReconnectLoop(() => now);
    now = 1_500;
    assert.equal(loop.downForMs(), 1_500);
    loop.close();
  });
});
