import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, type JWK } from 'jose';
import {
  ActionTokenVerifier,
  RevocationSubscription,
  SsfSubscription,
  SSF_REVOCATION_EVENTS,
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
 * `private_key_jwt` assertion, and the app's `ActionTokenVerifier` fed either by a `RevocationSubscription`
 * to Baton's revocation feed or by an `SsfSubscription` to Baton's Shared Signals stream.
 */
describe('service accounts: an issued service token is refused by the app server once the service is revoked', () => {
  let t: TestBackend;
  let appKeys: { publicJwk: JWK; privateJwk: JWK };
  let revoked: EnrolledService;
  let bystander: EnrolledService;
  let viaSsf: EnrolledService;
  let viaSsfBystander: EnrolledService;

  before(async () => {
    t = await startTestBackend();
    appKeys = await appKeyPair();
    await publishPolicy(t.admin, {
      ...tellerPolicy(appKeys.publicJwk),
      service: { tokenTtlSeconds: 600, actions: { [ACTION]: { actor: 'none' } } },
    } as Policy);
    revoked = await enrolService(t, 'nightly statements batch', [ACTION]);
    bystander = await enrolService(t, 'fraud scoring job', [ACTION]);
    viaSsf = await enrolService(t, 'card dispute intake', [ACTION]);
    viaSsfBystander = await enrolService(t, 'branch cash forecast', [ACTION]);
  });
  after(() => t.stop());

  /**
   * Two live service tokens; the admin revokes the first service; once `revocations` has applied it
   * (`heard`), the first token is refused TOKEN_REVOKED before its exp and the other still verifies.
   */
  async function revokedMidFlight(
    revocations: ConstructorParameters<typeof ActionTokenVerifier>[0]['revocations'],
    heard: Revocation[],
    revoked: EnrolledService,
    bystander: EnrolledService,
  ): Promise<void> {
    const verifier = new ActionTokenVerifier({
      audience: TELLER_AUDIENCE,
      jwksUrl: `${t.url}/v1/tokens/jwks.json`,
      actions: { [ACTION]: { level: 'presence', allowServices: true } },
      revocations,
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

    const answer = await t.admin.ok('POST', `/v1/admin/services/${revoked.id}/revoke`, {
      reason: 'credentials leaked',
    });
    assert.equal(answer.tokensRevoked, 1);
    // Wait (polling, bounded) for the app server's revocation source to apply the service's revocation.
    const deadline = Date.now() + 20_000;
    while (!heard.some((r) => r.kind === 'service' && r.targetId === revoked.id)) {
      if (Date.now() > deadline)
        assert.fail(`the service's revocation never reached the app server: ${JSON.stringify(heard)}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }

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
      heard.filter((r) => r.targetId === bystander.id),
      [],
      'nothing was applied for the other service',
    );
  }

  it('by Baton’s revocation feed: refuses the revoked service’s live token TOKEN_REVOKED before its exp; another service’s token still verifies', async () => {
    const heard: Revocation[] = [];
    const subscription = new RevocationSubscription({
      batonUrl: t.url,
      audience: TELLER_AUDIENCE,
      privateKey: appKeys.privateJwk,
      onRevocation: (r) => heard.push(r),
    });
    try {
      await subscription.ready;
      await revokedMidFlight(subscription, heard, revoked, bystander);
    } finally {
      subscription.close();
    }
  });

  it('by the Shared Signals stream (urn:baton:event:service-revoked, subject application): the same', async () => {
    const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
      name: 'Payments app server',
      scopes: ['ssf.manage'],
    })) as { token: string };
    // The receiver's poll stream was made by an earlier verifier, which did not ask for service-revoked:
    // the subscription finds it and adds the event.
    const created = await fetch(`${t.url}/ssf/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${issued.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        delivery: { method: 'urn:ietf:rfc:8936' },
        events_requested: SSF_REVOCATION_EVENTS.filter((e) => !e.endsWith(':service-revoked')),
      }),
    });
    assert.equal(created.status, 201);
    const heard: Revocation[] = [];
    const ssf = new SsfSubscription({ batonUrl: t.url, token: issued.token, onRevocation: (r) => heard.push(r) });
    try {
      await ssf.ready;
      // The same stream, widened: it keeps every event it delivered and adds the one it lacked.
      const { stream_id: streamId } = (await created.json()) as { stream_id: string };
      const widened = (await (
        await fetch(`${t.url}/ssf/streams?stream_id=${streamId}`, {
          headers: { authorization: `Bearer ${issued.token}` },
        })
      ).json()) as { events_delivered: string[] };
      assert.deepEqual([...widened.events_delivered].sort(), [...SSF_REVOCATION_EVENTS].sort());
      await revokedMidFlight(ssf, heard, viaSsf, viaSsfBystander);
    } finally {
      ssf.close();
    }
  });
});
