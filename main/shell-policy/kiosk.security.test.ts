import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import { guardKioskClose } from './kiosk-close.js';

/** A stand-in for the kiosk BrowserWindow: emits `close` the way Electron does, with a preventable event. */
class FakeWindow extends EventEmitter {
  /** What the window manager's Alt+F4 (or a taskbar "close") does: true when the window stays. */
  attemptClose(): boolean {
    let prevented = false;
    this.emit('close', { preventDefault: () => (prevented = true) });
    return prevented;
  }
}

describe('a branch kiosk cannot be closed to reach the desktop', () => {
  test('a close from the window manager (Alt+F4, where closable is not honoured) is refused', () => {
    const window = new FakeWindow();
    let refused = 0;
    guardKioskClose(
      window,
      () => false,
      () => refused++,
    );
    assert.equal(window.attemptClose(), true, 'the kiosk window stays');
    assert.equal(refused, 1, 'the refusal is reported');
  });

  test('Baton quitting, or the OS session ending, still closes it', () => {
    let quitting = false;
    const window = new FakeWindow();
    guardKioskClose(window, () => quitting);
    quitting = true;
    assert.equal(window.attemptClose(), false);

    const other = new FakeWindow();
    guardKioskClose(other, () => false);
    other.emit('session-end', { preventDefault: () => undefined });
    assert.equal(other.attemptClose(), false);
  });
});
