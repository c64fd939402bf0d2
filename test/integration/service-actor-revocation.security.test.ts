import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, type JWK } from 'jose';
import {
  ActionTokenVerifier,
  RevocationSubscription,
  VerificationError,
  type Revocation,
} from '../../packages/verifier/src/index.js';
import type { Policy } from '../../shared/policy.js';
import type { ActionTokenClaims } from '../../backend/tokens/action-token-issuer.js';
import { TestConsole, assertError, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import {
  TELLER_AUDIENCE,
  appKeyPair,
  exchange,
  publishPolicy,
  tellerPolicy,
} from '../helpers/action-token-fixtures.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { enrolService, requestServiceToken, type EnrolledService } from '../helpers/service-account-fixtures.js';

const ACTION = 'customer.view';

/**
 * Issue 14's service tokens bound to a human session (`sub` = the service, `act` = the operator,
 * their session and console): every revocation that refuses the human's own token refuses the
 * service's too, at the app server (Baton's own revocation feed sends one operator, passkey or
 * console record, not one per session), and at the token endpoint when it commits while the token
 * is being signed.
 */
describe('service accounts: a service token acting for a human goes with that human’s revocation', () => {
  let t: TestBackend;
  let appKeys: { publicJwk: JWK; privateJwk: JWK };
  let service: EnrolledService;
  let subscription: RevocationSubscription;
  let verifier: ActionTokenVerifier;
  const heard: Revocation[] = [];
  let onHeard: (() => void) | undefined;

  before(async () => {
    t = await startTestBackend();
    appKeys = await appKeyPair();
    await publishPolicy(t.admin, {
      ...tellerPolicy(appKeys.publicJwk),
      service: { tokenTtlSeconds: 600, actions: { [ACTION]: { actor: 'optional' } } },
    } as Policy);
    service = await enrolService(t, 'contact-centre integration', [ACTION]);
    subscription = new RevocationSubscription({
      batonUrl: t.url,
      audience: TELLER_AUDIENCE,
      privateKey: appKeys.privateJwk,
      onRevocation: (r) => {
        heard.push(r);
        onHeard?.();
      },
    });
    await subscription.ready;
    verifier = new ActionTokenVerifier({
      audience: TELLER_AUDIENCE,
      jwksUrl: `${t.url}/v1/tokens/jwks.json`,
      actions: { [ACTION]: { level: 'presence', allowServices: true } },
      revocations: subscription,
    });
  });
  after(async () => {
    subscription.close();
    await t.stop();
  });

  /** Resolves once the app server's subscription has applied a revocation `matching`. */
  function until(matching: (r: Revocation) => boolean): Promise<void> {
    return new Promise((resolve) => {
      onHeard = () => {
        if (heard.some(matching)) resolve();
      };
      onHeard();
    });
  }

  /** The service's token exchange acting for the human whose action token is `actorToken`. */
  const serviceToken = (actorToken: string) => requestServiceToken(t, service, TELLER_AUDIENCE, ACTION, actorToken);

  /** An operator signed in at a console of their own, their action token, and the service's token acting for them. */
  async function seated() {
    const console = await TestConsole.enrol(t.url, t.admin);
    const enrolled = await enrolOperator(t.admin, console);
    const signedIn = (await signIn(console, enrolled.authenticator)).body as Json;
    const human = await exchange(console, signedIn.token as string, ACTION);
    assert.equal(human.status, 200, JSON.stringify(human.body));
    const humanToken = human.body.access_token as string;
    const issued = await serviceToken(humanToken);
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    return {
      console,
      ...enrolled,
      sessionId: signedIn.session.id as string,
      humanToken,
      serviceToken: issued.body.access_token as string,
    };
  }

  async function refusal(token: string): Promise<string | undefined> {
    try {
      await verifier.verify(token, ACTION);
      return undefined;
    } catch (error) {
      if (error instanceof VerificationError) return error.code;
      throw error;
    }
  }

  for (const kind of ['operator', 'credential', 'console'] as const) {
    it(`refuses the service's token at the app server once the human's ${kind} is revoked, before it expires`, async () => {
      const ada = await seated();
      const bystander = await seated();
      const acting = await verifier.verify(ada.serviceToken, ACTION);
      assert.equal(acting.operator, service.id);
      assert.deepEqual(acting.actor, { sub: ada.operatorId, sid: ada.sessionId, console: ada.console.id });

      const target = { operator: ada.operatorId, credential: ada.credentialId, console: ada.console.id }[kind];
      await t.admin.ok('POST', `/v1/admin/${kind}s/${target}/revoke`, { reason: 'left the bank' });
      await until((r) => r.kind === kind && r.targetId === target);

      assert.equal(await refusal(ada.humanToken), 'TOKEN_REVOKED');
      assert.equal(await refusal(ada.serviceToken), 'TOKEN_REVOKED', 'the service token acting for her too');
      assert.ok(decodeJwt(ada.serviceToken).exp! * 1000 > Date.now() + 60_000, 'long before it expires');
      // Another operator's service token, on another console, still verifies.
      assert.equal(await refusal(bystander.serviceToken), undefined);
    });
  }

  it('refuses the service token when the human is revoked while it is being signed', async () => {
    const ada = await seated();
    const issuer = t.backend.services.actionTokens.issuer;
    const sign = issuer.sign.bind(issuer);
    const signedJtis: string[] = [];
    // The operator's revocation commits after the token endpoint read her session as active, before
    // the issuance is recorded.
    issuer.sign = async (claims: ActionTokenClaims) => {
      issuer.sign = sign;
      await t.admin.ok('POST', `/v1/admin/operators/${ada.operatorId}/revoke`, { reason: 'dismissed' });
      const issued = await sign(claims);
      signedJtis.push(issued.jti);
      return issued;
    };
    try {
      const raced = await serviceToken(ada.humanToken);
      assertError(raced, 403, 'SERVICE_ACTOR_INVALID');
      assert.equal(raced.body.access_token, undefined);
    } finally {
      issuer.sign = sign;
    }
    assert.equal(signedJtis.length, 1, 'the token was signed, and never handed out');
    const issuedEvents = (await t.admin.ok('GET', '/v1/admin/events?type=service-token-issued&limit=1000'))
      .events as Json[];
    assert.ok(!issuedEvents.some((e) => e.detail.jti === signedJtis[0]), 'no issuance recorded for it');
  });
});
