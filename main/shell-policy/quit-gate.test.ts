import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { quitGate } from './quit-gate.js';

/** No deadline reached in these tests unless they ask for one. */
const noDeadline = {
  ms: 60_000,
  onDeadline: () => assert.fail('the deadline passed'),
};

/** A `before-quit` event that records whether the quit was held. */
const quitEvent = () => {
  const event = { held: false, preventDefault: () => void (event.held = true) };
  return event;
};

describe('quitGate', () => {
  it('holds the first quit until the agent has stopped, then quits once and lets that quit through', async () => {
    let finish!: () => void;
    let stops = 0;
    let quits = 0;
    const beforeQuit = quitGate(
      () => {
        stops++;
        return new Promise<void>((resolve) => (finish = resolve));
      },
      () => quits++,
      noDeadline,
    );
    const first = quitEvent();
    beforeQuit(first);
    assert.equal(first.held, true, 'the app does not quit while the journal is still closing');
    const meanwhile = quitEvent();
    beforeQuit(meanwhile);
    assert.equal(meanwhile.held, true);
    assert.equal(stops, 1, 'a second quit starts no second stop');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(quits, 0);
    finish();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(quits, 1);
    const last = quitEvent();
    beforeQuit(last);
    assert.equal(last.held, false, 'the quit asked for after the stop goes through');
    assert.equal(stops, 1);
  });

  it('a stop that fails still ends in the quit', async () => {
    let quits = 0;
    const beforeQuit = quitGate(
      () => Promise.reject(new Error('disk gone')),
      () => quits++,
      noDeadline,
    );
    beforeQuit(quitEvent());
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(quits, 1);
  });

  it('a stop that never settles holds the quit only until the deadline, says so, and quits once', async () => {
    let quits = 0;
    let deadlines = 0;
    let finish!: () => void;
    let quitted!: () => void;
    const quit = new Promise<void>((resolve) => (quitted = resolve));
    const beforeQuit = quitGate(
      () => new Promise<void>((resolve) => (finish = resolve)),
      () => {
        quits++;
        quitted();
      },
      { ms: 50, onDeadline: () => deadlines++ },
    );
    const first = quitEvent();
    beforeQuit(first);
    assert.equal(first.held, true);
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([quit, new Promise((resolve) => (bound = setTimeout(resolve, 10_000)))]);
    clearTimeout(bound);
    assert.equal(deadlines, 1, 'the deadline is reported (logged by the shell)');
    assert.equal(quits, 1);
    const last = quitEvent();
    beforeQuit(last);
    assert.equal(last.held, false, 'the quit asked for after the deadline goes through');
    // The stop settling late quits nothing a second time.
    finish();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(quits, 1);
  });
});
