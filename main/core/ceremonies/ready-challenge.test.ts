import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { BatonError } from '../../../shared/errors.js';
import { FakeClock } from '../../../test/helpers/fake-clock.js';
import { ReadyChallenge } from './ready-challenge.js';

const TIMEOUT_MS = 120_000;

/** A backend that issues numbered challenges, each answer held until the test releases it. */
class Backend {
  issued = 0;
  private waiting: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  /** When false, each request is answered at once. */
  hold = false;

  fetch = (): Promise<PublicKeyCredentialRequestOptionsJSON> => {
    this.issued += 1;
    const options = { challenge: `c${this.issued}`, rpId: 'baton.test', timeout: TIMEOUT_MS };
    if (!this.hold) return Promise.resolve(options);
    return new Promise((resolve, reject) => this.waiting.push({ resolve: () => resolve(options), reject }));
  };

  answer(): void {
    this.waiting.shift()?.resolve();
  }

  refuse(error: unknown): void {
    this.waiting.shift()?.reject(error);
  }
}

/** Lets the promise callbacks queued so far run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('the next tap’s challenge, asked for ahead', () => {
  let clock: FakeClock;
  let backend: Backend;
  let failures: unknown[];
  let ready: ReadyChallenge;

  beforeEach(() => {
    clock = new FakeClock();
    backend = new Backend();
    failures = [];
    ready = new ReadyChallenge({ fetch: backend.fetch, clock, failed: (error) => failures.push(error) });
  });

  test('with nothing asked for ahead, a tap asks the backend for its own challenge', async () => {
    const options = await ready.take(1);
    assert.equal(options.challenge, 'c1');
    assert.equal(options.timeout, TIMEOUT_MS);
    assert.equal(backend.issued, 1);
  });

  test('a challenge asked for ahead answers the next tap without a request, with only its life left as timeout', async () => {
    ready.refill(1);
    await settle();
    await clock.advance(10_000);
    const options = await ready.take(1);
    assert.equal(options.challenge, 'c1');
    assert.equal(options.timeout, TIMEOUT_MS - 10_000);
    assert.equal(backend.issued, 1);
  });

  test('each challenge answers one tap: the second tap asks for a fresh one', async () => {
    ready.refill(1);
    await settle();
    assert.equal((await ready.take(1)).challenge, 'c1');
    assert.equal((await ready.take(1)).challenge, 'c2');
    assert.equal(backend.issued, 2);
  });

  test('a refill while a usable challenge is held asks for nothing', async () => {
    ready.refill(1);
    await settle();
    ready.refill(1);
    ready.refill(1);
    await settle();
    assert.equal(backend.issued, 1);
  });

  test('a challenge past half its life is not used: the tap gets a fresh one', async () => {
    ready.refill(1);
    await settle();
    await clock.advance(TIMEOUT_MS / 2);
    const options = await ready.take(1);
    assert.equal(options.challenge, 'c2');
    assert.equal(options.timeout, TIMEOUT_MS);
  });

  test('an old held challenge is replaced by a refill', async () => {
    ready.refill(1);
    await settle();
    await clock.advance(TIMEOUT_MS);
    ready.refill(1);
    await settle();
    assert.equal(backend.issued, 2);
    assert.equal((await ready.take(1)).challenge, 'c2');
  });

  test('a challenge issued under another policy version is not used (its user-verification rule may be stale)', async () => {
    ready.refill(1);
    await settle();
    const options = await ready.take(2);
    assert.equal(options.challenge, 'c2');
  });

  test('a tap while the challenge is on its way waits for it rather than asking twice', async () => {
    backend.hold = true;
    ready.refill(1);
    const taken = ready.take(1);
    backend.answer();
    assert.equal((await taken).challenge, 'c1');
    assert.equal(backend.issued, 1);
  });

  test('a challenge on its way when the connection closed is never used', async () => {
    backend.hold = true;
    ready.refill(1);
    ready.discard();
    backend.answer();
    await settle();
    backend.hold = false;
    const options = await ready.take(1);
    assert.equal(options.challenge, 'c2');
  });

  test('a held challenge is dropped when the connection closes', async () => {
    ready.refill(1);
    await settle();
    ready.discard();
    assert.equal((await ready.take(1)).challenge, 'c2');
  });

  test('a refused fetch ahead is reported and the tap asks again, seeing the backend’s own answer', async () => {
    backend.hold = true;
    ready.refill(1);
    backend.refuse(new BatonError('NODE_STALE', 'stale'));
    await settle();
    assert.deepEqual(
      failures.map((error) => (error as BatonError).code),
      ['NODE_STALE'],
    );
    const taken = ready.take(1);
    backend.answer();
    assert.equal((await taken).challenge, 'c2');
  });

  test('a tap waiting on a fetch ahead that fails asks for its own challenge', async () => {
    backend.hold = true;
    ready.refill(1);
    const taken = ready.take(1);
    backend.refuse(new Error('socket hang up'));
    await settle();
    backend.answer();
    assert.equal((await taken).challenge, 'c2');
    assert.equal(failures.length, 1);
  });
});
