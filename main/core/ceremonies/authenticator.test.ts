import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { BatonError } from '../../../shared/errors.js';
import type { CeremonyPort } from '../agent-types.js';
import { askAssertion, askCredential } from './authenticator.js';

const ANSWER: AuthenticationResponseJSON = {
  id: 'Y3JlZA',
  rawId: 'Y3JlZA',
  type: 'public-key',
  response: { clientDataJSON: 'e30', authenticatorData: 'AA', signature: 'AA' },
  clientExtensionResults: {},
};

function port(getAssertion: CeremonyPort['getAssertion']): CeremonyPort {
  return { getAssertion, createCredential: () => Promise.reject(new Error('the operator closed the dialog')) };
}

describe('the operator’s half of a ceremony', () => {
  test('passes the purpose, the options and the action to the port and returns a well-formed answer', async () => {
    const asked: unknown[] = [];
    const answer = await askAssertion(
      port((request) => {
        asked.push(request);
        return Promise.resolve(ANSWER);
      }),
      'step-up',
      { challenge: 'Y2g' },
      'payment.approve',
    );
    assert.equal(answer.id, ANSWER.id);
    assert.deepEqual(asked, [{ purpose: 'step-up', options: { challenge: 'Y2g' }, action: 'payment.approve' }]);
  });

  test('a cancelled or timed-out tap is CEREMONY_CANCELLED, keeping the cause', async () => {
    const cause = new Error('NotAllowedError');
    await assert.rejects(
      askAssertion(
        port(() => Promise.reject(cause)),
        'sign-in',
        { challenge: 'Y2g' },
      ),
      (error: BatonError) => error.code === 'CEREMONY_CANCELLED' && error.cause === cause,
    );
    await assert.rejects(
      askCredential(
        port(() => Promise.resolve(ANSWER)),
        'Lu',
        {} as never,
      ),
      (error: BatonError) => error.code === 'CEREMONY_CANCELLED',
    );
  });

  test('an answer of the wrong shape from a compromised UI is refused before anything reads it', async () => {
    const forged = { ...ANSWER, response: { clientDataJSON: 42 } } as unknown as AuthenticationResponseJSON;
    await assert.rejects(
      askAssertion(
        port(() => Promise.resolve(forged)),
        'sign-in',
        { challenge: 'Y2g' },
      ),
      (error: BatonError) => error.code === 'CEREMONY_CANCELLED' && /unusable/.test(error.message),
    );
  });

  test('a refusal the port already coded (another tap is pending in the UI) keeps its code', async () => {
    await assert.rejects(
      askAssertion(
        port(() => Promise.reject(new BatonError('CEREMONY_IN_PROGRESS', 'another tap'))),
        'sign-in',
        { challenge: 'Y2g' },
      ),
      (error: BatonError) => error.code === 'CEREMONY_IN_PROGRESS',
    );
  });
});
