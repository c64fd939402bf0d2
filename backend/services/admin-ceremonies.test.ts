import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import pino from 'pino';
import { BatonError } from '../../shared/errors.js';
import type { AdminSessionRecord } from '../store/admin-repositories.js';
import { openStore } from '../store/open-store.js';
import type { Store } from '../store/repositories.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../store/postgres-throwaway.js';
import { AdminAuth } from './admin-auth.js';
import { AdminCeremonies, type AdminCeremonyDeps } from './admin-ceremonies.js';
import type { AuthenticatorMetadata } from './authenticator-metadata.js';
import { EventLog } from './event-log.js';
import { InProcessBus } from '../cluster/bus.js';
import type { OperatorDirectory } from './operator-directory.js';
import type { PolicyService } from './policy-service.js';
import { tempDir } from '../temp-dir.js';

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

/** The engines these tests run on: embedded SQLite, and PostgreSQL where it can run here. */
const ENGINES = ['sqlite', 'postgres'] as const;
let postgres: Promise<PostgresServer> | undefined;
after(async () => {
  if (postgres !== undefined) await (await postgres).stop();
});
let databases = 0;

/** A fresh store on `engine` (PostgreSQL: a database of its own on one throwaway server). */
async function openTestStore(engine: (typeof ENGINES)[number], prefix: string): Promise<Store> {
  const dataDir = tempDir(prefix);
  if (engine === 'sqlite') return openStore({ dataDir, durability: 'normal' });
  postgres ??= startPostgres();
  const url = await createDatabase((await postgres).url, `baton_unit_${process.pid}_${++databases}`);
  return openStore({ dataDir, durability: 'normal', databaseUrl: url });
}

const skipOn = (engine: (typeof ENGINES)[number]) => (engine === 'postgres' ? postgresSkip() : false);

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    assert.ok(error instanceof BatonError, String(error));
    return error.code;
  }
}

for (const engine of ENGINES) {
  describe(`AdminCeremonies across nodes (${engine})`, { skip: skipOn(engine) }, () => {
    let now = 1_000_000;
    const clock = () => now;
    const logger = pino({ level: 'silent' });
    let store: Store;
    before(async () => {
      store = await openTestStore(engine, 'baton-admin-ceremonies-');
    });
    after(() => store.close());
    /** One backend node: its own services, sharing only the store with the others. */
    const node = () => {
      const bus = new InProcessBus({ nodeId: `node-${Math.random()}`, logger });
      const events = new EventLog(store, clock, logger, bus);
      const origin = () => 'http://localhost:1';
      const deps: AdminCeremonyDeps = {
        store,
        events,
        policies: {} as PolicyService,
        operators: {} as OperatorDirectory,
        auth: new AdminAuth({ store, events, clock, origin, logger, bus }),
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
}
