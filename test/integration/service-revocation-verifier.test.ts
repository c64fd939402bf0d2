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
import { startTestBackend, type TestBackend } from '../helpers/backend-harness.js';
import { TELLER_AUDIENCE, appKeyPair, publishPolicy, tellerPolicy } from '../helpers/action-token-fixtures.js';
import { enrolService, requestServiceToken, type EnrolledService } from '../helpers/service-account-fixtures.js';

const ACTION = 'customer.view';

/**
 * Issue 14: a service token already issued (still before its `exp`) is refused by an app server
 * once the service is revoked, not only the service's next token request. Real parts end to end: a
 * backend, services enrolled with their own keys, tokens from the token endpoint on a
 * `private_key_jwt` assertion, and the app's `ActionTokenVerifier` fed by a `RevocationSubscription`
 * to Baton's revocation feed.
 */
describe('service accounts: an issued service token is refused by the app server once the service is revoked', () => {
  let t: TestBackend;
  let appKeys: { publicJwk: JWK; privateJwk: JWK };
  let revoked: EnrolledService;
  let bystander: EnrolledService;

  before(async () => {
    t = await startTestBackend();
    appKeys = await appKeyPair();
    await publishPolicy(t.admin, {
      ...tellerPolicy(appKeys.publicJwk),
      service: { tokenTtlSeconds: 600, actions: { [ACTION]: { actor: 'none' } } },
    } as Policy);
    revoked = await enrolService(t, 'nightly statements batch', [ACTION]);
    bystander = await enrolService(t, 'fraud scoring job', [ACTION]);
  });
  after(() => t.stop());

  it('refuses the revoked service’s live token TOKEN_REVOKED before its exp; another service’s token still verifies', async () => {
    const applied: Revocation[] = [];
    let notify: (() => void) | undefined;
    const subscription = new RevocationSubscription({
      batonUrl: t.url,
      audience: TELLER_AUDIENCE,
      privateKey: appKeys.privateJwk,
      onRevocation: (r) => {
        applied.push(r);
        notify?.();
      },
    });
    try {
      await subscription.ready;
      const verifier = new ActionTokenVerifier({
        audience: TELLER_AUDIENCE,
        jwksUrl: `${t.url}/v1/tokens/jwks.json`,
        actions: { [ACTION]: { level: 'presence', allowServices: true } },
        revocations: subscription,
      });

      const issue = async (service: EnrolledService): Promise<string> => {
        const result = await requestServiceToken(t, service, TELLER_AUDIENCE, ACTION);
        assert.equal(result.status, 200, JSON.stringify(result.body));
        return result.body.access_token as string;
      };
      const token = await issue(revoked);
      const otherToken = await issue(bystander);

      // Both verify before the revocation, as service tokens of their own service.
      const first = await verifier.verify(token, ACTION);
      assert.equal(first.operator, revoked.id);
      assert.equal(first.channel, 'service');
      assert.equal((await verifier.verify(otherToken, ACTION)).operator, bystander.id);

      // The admin revokes the service; wait for the subscription to apply its revocation.
      const pushed = new Promise<void>((resolve) => {
        notify = () => {
          if (applied.some((r) => r.kind === 'service' && r.targetId === revoked.id)) resolve();
        };
      });
      const answer = await t.admin.ok('POST', `/v1/admin/services/${revoked.id}/revoke`, {
        reason: 'credentials leaked',
      });
      assert.equal(answer.tokensRevoked, 1);
      await pushed;

      // The same token, still within its lifetime, is now refused with the revocation code.
      const refusal = await verifier.verify(token, ACTION).then(
        () => assert.fail('the revoked service’s token was accepted'),
        (e: unknown) => e,
      );
      assert.ok(refusal instanceof VerificationError, String(refusal));
      assert.equal(refusal.code, 'TOKEN_REVOKED', refusal.message);
      assert.equal(refusal.status, 401);
      assert.ok(decodeJwt(token).exp! * 1000 > Date.now(), 'refused while its exp is still in the future');

      // The revocation is scoped to that service: the other one's token still verifies.
      assert.equal((await verifier.verify(otherToken, ACTION)).operator, bystander.id);
      assert.deepEqual(
        applied.filter((r) => r.targetId === bystander.id),
        [],
        'nothing was pushed for the other service',
      );
    } finally {
      subscription.close();
    }
  });
});
