import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { lagAwareTimeoutSignal, lagAwareTimer } from './lag-aware-timer.js';
import { stall } from './test-kit.js';

describe('lagAwareTimer: a deadline that counts only the time the process ran', () => {
  it('a wait the process did not run through is given that time again, not judged on the first tick', async () => {
    let expiredAt = 0;
    const expired = new Promise<void>((resolve) =>
      lagAwareTimer(300, () => {
        expiredAt = performance.now();
        resolve();
      }),
    );
    stall(1_000); // the 300 ms deadline passes while nothing runs
    const resumedAt = performance.now();
    await expired;
    // A plain timer (or one that waits a single turn) expires within a millisecond of waking.
    assert.ok(expiredAt - resumedAt >= 250, `expired ${Math.round(expiredAt - resumedAt)} ms after the stall`);
  });

  it('a connection made while the process stalled past a multi-step deadline completes, and is then answered', async () => {
    // What the store's wait for a connection needs: after the stall, more than one read (connect, then a reply).
    const server = createServer((socket) => socket.once('data', () => socket.end('pong')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      const outcome = await new Promise<string>((resolve) => {
        const timer = lagAwareTimer(200, () => {
          socket.destroy();
          resolve('timed out');
        });
        const socket: Socket = connect({ port, host: '127.0.0.1' }, () => socket.write('ping'));
        socket.once('data', (data) => {
          timer.clear();
          socket.end();
          resolve(String(data));
        });
        socket.once('error', (error) => resolve(`error: ${error.message}`));
        stall(600); // the kernel accepts the connection meanwhile; the reply needs one more round trip after
      });
      assert.equal(outcome, 'pong');
    } finally {
      server.close();
    }
  });

  it('an overloaded loop still ends the wait: no more than its own length is given back in all', async () => {
    let expiredAt = 0;
    const expired = new Promise<void>((resolve) =>
      lagAwareTimer(1_000, () => {
        expiredAt = performance.now();
        resolve();
      }),
    );
    let stalledAgainAt = 0;
    // A second stall right after the timer gave the wait its 1,000 ms back, longer than that again: a timer of the
    // same length set after it runs after it.
    setTimeout(() => {
      stall(2_500);
      stalledAgainAt = performance.now();
    }, 1_000);
    stall(2_500);
    await expired;
    // Given back once more (another 1,000 ms) it would expire no sooner than 1 s after the second stall.
    assert.ok(stalledAgainAt > 0, 'the second stall ran before the wait ended');
    assert.ok(expiredAt - stalledAgainAt < 500, `expired ${Math.round(expiredAt - stalledAgainAt)} ms after it`);
  });

  it('a wait with no answer still ends, once, after its time', async () => {
    let calls = 0;
    await new Promise<void>((resolve) =>
      lagAwareTimer(50, () => {
        calls++;
        resolve();
      }),
    );
    assert.equal(calls, 1);
  });

  it('as a fetch signal: aborts with a TimeoutError, as AbortSignal.timeout does, and not while clearing in time', async () => {
    const deadline = lagAwareTimeoutSignal(50);
    const reason = await new Promise<unknown>((resolve) =>
      deadline.signal.addEventListener('abort', () => resolve(deadline.signal.reason)),
    );
    assert.ok(reason instanceof DOMException);
    assert.equal(reason.name, 'TimeoutError');

    const answered = lagAwareTimeoutSignal(50);
    stall(200); // the answer was waiting when the process resumed; it is read and the deadline cleared
    await new Promise((resolve) => setImmediate(resolve));
    answered.clear();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(answered.signal.aborted, false, 'not aborted on the first tick after the stall');
  });
});
