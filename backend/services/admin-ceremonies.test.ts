import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import pino from 'pino';
import { BatonError } from '../../shared/errors.js';
import type { AdminSessionRecord } from '../store/admin-repositories.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { AdminAuth } from './admin-auth.js';
import { AdminCeremonies, type AdminCeremonyDeps } from './admin-ceremonies.js';
import type { AuthenticatorMetadata } from './authenticator-metadata.js';
import { EventLog } from './event-log.js';
import type { OperatorDirectory } from './operator-directory.js';
import type { PolicyService } from './policy-service.js';

/** An assertion that names `challenge` and a credential nobody holds: it fails after the challenge is taken. */
function answer(challenge: string): AuthenticationResponseJSON {
  const clientData = { type: 'webauthn.get', challenge, origin: 'http://localhost:1' };
  return {
    id: 'no-such-credential',
    rawId: 'no-such-credential',
    type: 'public-key',
    clientExtensionResults: {},
    response: {
      clientDataJSON: Buffer.from(JSON.stringify(clientData)).toString('base64url'),
      authenticatorData: '',
      signature: '',
    },
  };
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    assert.ok(error instanceof BatonError, String(error));
    return error.code;
  }
}

describe('AdminCeremonies across nodes', () => {
  let now = 1_000_000;
  const clock = () => now;
  const logger = pino({ level: 'silent' });
  const store = openSqliteStore({
    dataDir: mkdtempSync(join(tmpdir(), 'baton-admin-ceremonies-')),
    durability: 'normal',
  });
  after(() => store.close());
  /** One backend node: its own services, sharing only the store with the others. */
  const node = () => {
    const events = new EventLog(store, clock, logger);
    const origin = () => 'http://localhost:1';
    const deps: AdminCeremonyDeps = {
      store,
      events,
      policies: {} as PolicyService,
      operators: {} as OperatorDirectory,
      auth: new AdminAuth({ store, events, clock, origin, logger }),
      clock,
      rpId: 'localhost',
      rpName: 'Baton',
      origin,
      challengeTtlMs: 60_000,
      attestationRootsConfigured: false,
      authenticators: {} as AuthenticatorMetadata,
    };
    return new AdminCeremonies(deps);
  };
  const session = { id: 'adm-1', operatorId: 'op-1' } as AdminSessionRecord;
  const challengeOf = (options: { options: { challenge: string } }) => options.options.challenge;

  it('takes a step-up challenge issued on one node on another, once', async () => {
    const [a, b] = [node(), node()];
    const challenge = challengeOf(await a.stepUpOptions(session));
    // Node B knows the challenge (it fails later, on the unknown credential), and it is gone for node A.
    assert.equal(await codeOf(b.stepUp(session, answer(challenge), '192.0.2.1')), 'CREDENTIAL_UNKNOWN');
    assert.equal(await codeOf(a.stepUp(session, answer(challenge), '192.0.2.1')), 'CHALLENGE_UNKNOWN');
  });

  it('refuses a step-up challenge for another admin session, and an expired one', async () => {
    const a = node();
    const other = challengeOf(await a.stepUpOptions({ ...session, id: 'adm-2' }));
    assert.equal(await codeOf(a.stepUp(session, answer(other), '192.0.2.1')), 'CHALLENGE_UNKNOWN');
    const late = challengeOf(await a.stepUpOptions(session));
    now += 60_000;
    assert.equal(await codeOf(node().stepUp(session, answer(late), '192.0.2.1')), 'CHALLENGE_EXPIRED');
  });

  it('keeps at most 8 outstanding step-up challenges per admin session, the oldest dropped', async () => {
    const a = node();
    const first = challengeOf(await a.stepUpOptions(session));
    for (let i = 0; i < 8; i++) await a.stepUpOptions(session);
    assert.equal(await codeOf(a.stepUp(session, answer(first), '192.0.2.1')), 'CHALLENGE_UNKNOWN');
  });

  it('accepts a sign-in challenge from one node on another, once', async () => {
    const [a, b] = [node(), node()];
    const challenge = challengeOf(await a.signInOptions());
    assert.equal(await codeOf(b.signIn(answer(challenge), '192.0.2.1')), 'CREDENTIAL_UNKNOWN');
    assert.equal(await codeOf(a.signIn(answer(challenge), '192.0.2.1')), 'CHALLENGE_UNKNOWN');
  });
});
