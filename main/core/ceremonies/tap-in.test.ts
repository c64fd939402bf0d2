import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server';
import { decodeAttestationObject, isoBase64URL, parseAuthenticatorData } from '@simplewebauthn/server/helpers';
import type { BatonError } from '../../../shared/errors.js';
import type { EventDraft } from '../../../shared/events.js';
import { DEFAULT_POLICY } from '../../../shared/policy.js';
import { FakeClock } from '../../../test/helpers/fake-clock.js';
import { SoftAuthenticator } from '../../../test/helpers/soft-authenticator.js';
import type { AgentSession } from '../session-manager.js';
import { OFFLINE_CHALLENGE_TTL_MS } from './offline-resume.js';
import { tapInOffline, type TapInDeps } from './tap-in.js';

const ORIGIN = 'https://baton.test';
const RP_ID = 'baton.test';

describe('tap-in while the backend is unreachable', () => {
  let clock: FakeClock;
  let authenticator: SoftAuthenticator;
  let lu: AgentSession;
  let events: EventDraft[];
  let resumed: [string, string, number][];
  let limitReached: boolean;
  let resumable: AgentSession[];
  /** What the authenticator does when asked: answer, or wait for the clock first. */
  let answerAfterMs: number;
  let deps: TapInDeps;

  beforeEach(() => {
    clock = new FakeClock();
    authenticator = new SoftAuthenticator(ORIGIN, { userVerified: true });
    const registration = authenticator.register({
      rp: { id: RP_ID, name: 'Baton' },
      user: { id: 'dXNlcg', name: 'lu', displayName: 'Lu' },
      challenge: 'cmVn',
      pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
    } as PublicKeyCredentialCreationOptionsJSON);
    const authData = decodeAttestationObject(isoBase64URL.toBuffer(registration.response.attestationObject)).get(
      'authData',
    );
    const publicKey = parseAuthenticatorData(authData).credentialPublicKey ?? new Uint8Array();
    lu = {
      id: 'ses_lu',
      operatorId: 'op_lu',
      credentialId: registration.id,
      publicKey: isoBase64URL.fromBuffer(publicKey),
      counter: 0,
      level: 'verified',
      state: 'locked',
    } as AgentSession;
    events = [];
    resumed = [];
    limitReached = false;
    resumable = [lu];
    answerAfterMs = 0;
    deps = {
      client: {} as TapInDeps['client'],
      challenge: () => Promise.reject(new Error('no backend in these tests')),
      sessions: {
        get offlineLimitReached() {
          return limitReached;
        },
        get all() {
          return [lu];
        },
        resumableOffline: () => resumable,
        resumedOffline: (id: string, level: string, counter: number) => {
          resumed.push([id, level, counter]);
          return lu;
        },
        signedIn: () => {
          throw new Error('no online sign-in offline');
        },
      } as unknown as TapInDeps['sessions'],
      port: {
        getAssertion: async ({ options }) => {
          if (answerAfterMs > 0) await clock.advance(answerAfterMs);
          return authenticator.assert(options);
        },
        createCredential: () => Promise.reject(new Error('unused')),
      },
      clock,
      consoleId: 'con_1',
      policy: DEFAULT_POLICY,
      channel: 'branch-kiosk',
      rpId: RP_ID,
      origin: ORIGIN,
      record: (draft) => {
        events.push(draft);
        return Promise.resolve();
      },
    };
  });

  test('the operator of a locked session resumes it with a tap verified on this console', async () => {
    const session = await tapInOffline(deps);
    assert.equal(session.id, 'ses_lu');
    assert.deepEqual(resumed, [['ses_lu', 'verified', 1]]);
    assert.deepEqual(events, []);
  });

  test('the ceremony settles just before the verified session comes to the front, and a refused one never settles', async () => {
    const order: string[] = [];
    const resumedOffline = deps.sessions.resumedOffline.bind(deps.sessions);
    deps.sessions.resumedOffline = (...args) => {
      order.push('resumed');
      return resumedOffline(...args);
    };
    deps.settle = () => void order.push('settled');
    await tapInOffline(deps);
    assert.deepEqual(order, ['settled', 'resumed']);

    order.length = 0;
    resumable = [];
    await assert.rejects(tapInOffline(deps), (error: BatonError) => error.code !== undefined);
    assert.deepEqual(order, []);
  });

  test('past the offline cap nobody resumes, and the refusal is journaled', async () => {
    limitReached = true;
    await assert.rejects(tapInOffline(deps), (error: BatonError) => error.code === 'OFFLINE_RESUME_REFUSED');
    assert.deepEqual(
      events.map((e) => e.reasons),
      [['offline-limit-reached']],
    );
    assert.deepEqual(resumed, []);
  });

  test('with nobody locked or suspended here, a new sign-in is refused before any tap', async () => {
    lu = { ...lu, state: 'active' };
    let asked = false;
    deps.port.getAssertion = () => {
      asked = true;
      return Promise.reject(new Error('unexpected'));
    };
    await assert.rejects(tapInOffline(deps), (error: BatonError) => error.code === 'OFFLINE_SIGN_IN_REFUSED');
    assert.equal(asked, false);
    assert.deepEqual(
      events.map((e) => e.reasons),
      [['offline-sign-in-refused']],
    );
  });

  test('a tap that arrives after this ceremony’s challenge expired opens nothing', async () => {
    answerAfterMs = OFFLINE_CHALLENGE_TTL_MS + 1;
    await assert.rejects(tapInOffline(deps), (error: BatonError) => error.code === 'CHALLENGE_UNKNOWN');
    assert.deepEqual(resumed, []);
    assert.deepEqual(
      events.map((e) => e.reasons),
      [['challenge-unknown']],
    );
  });

  test('a session left too long ago is refused and the failure names its operator', async () => {
    resumable = [];
    await assert.rejects(tapInOffline(deps), (error: BatonError) => error.code === 'OFFLINE_RESUME_REFUSED');
    assert.deepEqual(events[0]?.subject, { console: 'con_1', operator: 'op_lu' });
    assert.deepEqual(events[0]?.reasons, ['offline-grace-elapsed']);
  });

  test('each ceremony issues a fresh challenge', async () => {
    const challenges: string[] = [];
    deps.port.getAssertion = ({ options }) => {
      challenges.push(options.challenge);
      return Promise.resolve(authenticator.assert(options));
    };
    await tapInOffline(deps);
    await tapInOffline(deps);
    assert.equal(challenges.length, 2);
    assert.notEqual(challenges[0], challenges[1]);
  });
});
