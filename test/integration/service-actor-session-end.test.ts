import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT, createLocalJWKSet, decodeJwt, jwtVerify, type JWK } from 'jose';
import type { Policy } from '../../shared/policy.js';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GRANT_TOKEN_EXCHANGE } from '../../shared/service-accounts-api.js';
import { TestConsole, httpJson, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import {
  TELLER_AUDIENCE,
  appKeyPair,
  exchange,
  publishPolicy,
  tellerPolicy,
} from '../helpers/action-token-fixtures.js';
import { enrolOperator, redeemBreakGlassCode, signIn } from '../helpers/operator-flow.js';
import { enrolService } from '../helpers/service-account-fixtures.js';

/**
 * A service token that acts for a human session (`act`, `sid`) never outlives that session
 * (service-accounts.ts, as the console exchange in token-exchange.ts): a session that simply
 * expires pushes no revocation, so an app server would otherwise accept the service's token for a
 * session that had ended. The backend's clock is moved to 40 s before the session's end; the policy
 * would give the service 600 s.
 */
describe('service accounts: a token acting for a human session ends with that session', () => {
  let t: TestBackend;
  /** The backend's clock (and the console's and the service's) runs this far ahead of real time. */
  let offset = 0;
  let service: { id: string; kid: string; privateKey: CryptoKey };

  const assertion = () => {
    const now = Math.floor((Date.now() + offset) / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: service.kid })
      .setIssuer(service.id)
      .setSubject(service.id)
      .setAudience(`${t.url}/v1/services/token`)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 50)
      .sign(service.privateKey);
  };

  /** The service's token request for customer.view, acting for the human whose action token is `actorToken`. */
  const serviceToken = async (actorToken: string) =>
    httpJson(`${t.url}/v1/services/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: GRANT_TOKEN_EXCHANGE,
        client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
        client_assertion: await assertion(),
        audience: TELLER_AUDIENCE,
        action: 'customer.view',
        actor_token: actorToken,
        actor_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      }).toString(),
    });

  /** The service-token-refused events for this service, newest first. */
  const refusals = async (): Promise<Json[]> =>
    ((await t.admin.ok('GET', '/v1/admin/events?type=service-token-refused&limit=1000')).events as Json[]).filter(
      (e) => e.subject.service === service.id,
    );

  /** The policy of these tests: break-glass sessions may do `breakGlassActions`. */
  let appPublicJwk: JWK;
  const policyWith = (breakGlassActions: string[]): Policy =>
    ({
      ...tellerPolicy(appPublicJwk),
      breakGlass: { lifetimeSeconds: 900, actions: breakGlassActions, maxPerOperatorPerDay: 5, maxPerSitePerDay: 50 },
      service: { tokenTtlSeconds: 600, actions: { 'customer.view': { actor: 'optional' } } },
    }) as Policy;

  before(async () => {
    t = await startTestBackend({}, { clock: () => Date.now() + offset });
    appPublicJwk = (await appKeyPair()).publicJwk;
    await publishPolicy(t.admin, policyWith(['customer.view']));
    const enrolled = await enrolService(t, 'branch batch', ['customer.view']);
    service = { id: enrolled.id, kid: enrolled.kid, privateKey: enrolled.privateKey as CryptoKey };
  });
  after(() => t.stop());

  it('caps the service token at the end of the session its actor_token comes from', async () => {
    const kiosk = await TestConsole.enrol(t.url, t.admin);
    const { authenticator } = await enrolOperator(t.admin, kiosk);
    const signedIn = (await signIn(kiosk, authenticator, { userVerified: true })).body as Json;
    const sessionId = signedIn.session.id as string;
    const sessionEnd = Math.floor((signedIn.session.expiresAt as number) / 1000);
    try {
      offset = (signedIn.session.expiresAt as number) - Date.now() - 40_000;
      const late = new TestConsole(kiosk.url, kiosk.key, kiosk.id, () => Date.now() + offset);
      const refreshed = (await late.ok('POST', `/v1/sessions/${sessionId}/token`, {})) as Json;
      const human = await exchange(late, refreshed.token as string, 'customer.view');
      assert.equal(human.status, 200, JSON.stringify(human.body));

      const issued = await serviceToken(human.body.access_token as string);
      assert.equal(issued.status, 200, JSON.stringify(issued.body));
      // What an app server checks: the token verifies, acts for that session, and expires with it.
      const jwks = (await httpJson(`${t.url}/v1/tokens/jwks.json`, { method: 'GET' })).body;
      const { payload } = await jwtVerify(issued.body.access_token as string, createLocalJWKSet(jwks), {
        audience: TELLER_AUDIENCE,
        currentDate: new Date(Date.now() + offset),
      });
      assert.equal(payload.sid, sessionId);
      assert.equal((payload.act as Json).sid, sessionId);
      assert.ok(
        (payload.exp as number) <= sessionEnd,
        `service token exp ${String(payload.exp)} is past the session's end ${sessionEnd}`,
      );
      assert.ok((payload.exp as number) >= sessionEnd - 60, 'capped at the session end, not shorter');
      assert.ok(
        (issued.body.expires_in as number) <= 40,
        `expires_in ${String(issued.body.expires_in)} > the 40 s left`,
      );
    } finally {
      offset = 0;
    }
  });

  it('never lets the service token outlive the actor token it was given, however late it is presented', async () => {
    const kiosk = await TestConsole.enrol(t.url, t.admin);
    const { authenticator } = await enrolOperator(t.admin, kiosk);
    const signedIn = (await signIn(kiosk, authenticator, { userVerified: true })).body as Json;
    const human = await exchange(kiosk, signedIn.token as string, 'customer.view');
    assert.equal(human.status, 200, JSON.stringify(human.body));
    const actorExp = decodeJwt(human.body.access_token as string).exp!;
    try {
      // Two minutes later, the human's token (600 s) has 480 s left; the service's policy would give it 600 s.
      offset = 120_000;
      const issued = await serviceToken(human.body.access_token as string);
      assert.equal(issued.status, 200, JSON.stringify(issued.body));
      const exp = decodeJwt(issued.body.access_token as string).exp!;
      assert.ok(exp <= actorExp, `service token exp ${exp} is past the actor token's ${actorExp}`);
      assert.ok(exp >= actorExp - 2, 'capped at the actor token’s exp, not shorter');
      assert.ok((issued.body.expires_in as number) <= 480, `expires_in ${String(issued.body.expires_in)}`);
      // Once the human's token has expired it acts for no one.
      offset = (actorExp + 1) * 1000 - Date.now();
      const late = await serviceToken(human.body.access_token as string);
      assert.equal(late.status, 403, JSON.stringify(late.body));
      assert.equal(late.body.error.code, 'SERVICE_ACTOR_INVALID');
    } finally {
      offset = 0;
    }
  });

  it('refuses an actor whose passkey is suspended (possible copy) or revoked, or whose operator is revoked', async () => {
    // As the console exchange (token-exchange.ts assertUsable): these leave the session itself active.
    const cases: {
      what: string;
      reason: string;
      apply: (ids: { operatorId: string; credentialId: string }) => Promise<unknown>;
    }[] = [
      {
        what: 'passkey suspended',
        reason: 'credential-suspended',
        apply: ({ credentialId }) =>
          t.backend.store.operators.suspendCredential(credentialId, Date.now(), 'possible-cloned-authenticator'),
      },
      {
        what: 'passkey revoked',
        reason: 'credential-revoked',
        apply: ({ credentialId }) => t.backend.store.operators.revokeCredential(credentialId, Date.now(), 'lost'),
      },
      {
        what: 'operator revoked',
        reason: 'operator-revoked',
        apply: ({ operatorId }) => t.backend.store.operators.revoke(operatorId, Date.now(), 'left the bank'),
      },
    ];
    for (const { what, reason, apply } of cases) {
      const kiosk = await TestConsole.enrol(t.url, t.admin);
      const ids = await enrolOperator(t.admin, kiosk);
      const signedIn = (await signIn(kiosk, ids.authenticator, { userVerified: true })).body as Json;
      const human = await exchange(kiosk, signedIn.token as string, 'customer.view');
      assert.equal(human.status, 200, JSON.stringify(human.body));
      const before = await serviceToken(human.body.access_token as string);
      assert.equal(before.status, 200, `${what}: the actor is fine before: ${JSON.stringify(before.body)}`);

      await apply(ids);
      const refusedAtConsole = await exchange(kiosk, signedIn.token as string, 'customer.view');
      assert.equal(refusedAtConsole.status, 403, `${what}: the console exchange refuses`);

      const refused = await serviceToken(human.body.access_token as string);
      assert.equal(refused.status, 403, `${what}: ${JSON.stringify(refused.body)}`);
      assert.equal(refused.body.error.code, 'SERVICE_ACTOR_INVALID', what);
      assert.equal(refused.body.access_token, undefined);
      const event = (await refusals()).find((e) => e.subject.operator === ids.operatorId);
      assert.ok(event !== undefined, `${what}: a service-token-refused event`);
      assert.equal(event.outcome, 'failure');
      assert.equal(event.detail.code, 'SERVICE_ACTOR_INVALID');
      assert.deepEqual(event.reasons, ['service-actor-invalid', reason], what);
    }
  });

  it('marks a token acting for a break-glass session break_glass, and applies the policy’s breakGlass.actions now', async () => {
    const kiosk = await TestConsole.enrol(t.url, t.admin);
    const operatorId = ((await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Bo Teller' })) as Json)
      .operator.id as string;
    const redeemed = await redeemBreakGlassCode(t.admin, kiosk, operatorId);
    const sessionId = redeemed.session.id as string;
    const human = await exchange(kiosk, redeemed.token as string, 'customer.view');
    assert.equal(human.status, 200, JSON.stringify(human.body));
    const jwks = createLocalJWKSet((await httpJson(`${t.url}/v1/tokens/jwks.json`, { method: 'GET' })).body);
    const humanClaims = (await jwtVerify(human.body.access_token as string, jwks, { audience: TELLER_AUDIENCE }))
      .payload;
    assert.equal(humanClaims.break_glass, true, 'the operator’s own action token is marked');

    // A break-glass session rests on no passkey: it is a usable actor (no CREDENTIAL_REVOKED), and marked.
    const issued = await serviceToken(human.body.access_token as string);
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const { payload } = await jwtVerify(issued.body.access_token as string, jwks, { audience: TELLER_AUDIENCE });
    // The human, their session and its console (their revocation refuses this token at app servers too).
    assert.deepEqual(payload.act, { sub: operatorId, sid: sessionId, console: kiosk.id });
    assert.equal(payload.break_glass, true, 'the service token acting for a break-glass session is marked');
    const events = (await t.admin.ok('GET', '/v1/admin/events?type=service-token-issued&limit=1000')).events as Json[];
    const event = events.find((e) => e.detail.jti === payload.jti);
    assert.ok(event !== undefined, 'a service-token-issued event');
    assert.ok((event.reasons as string[]).includes('break-glass'), JSON.stringify(event.reasons));

    // An ordinary session's service token carries no mark.
    const ordinaryKiosk = await TestConsole.enrol(t.url, t.admin);
    const ordinary = await enrolOperator(t.admin, ordinaryKiosk);
    const signedIn = (await signIn(ordinaryKiosk, ordinary.authenticator, { userVerified: true })).body as Json;
    const ordinaryHuman = await exchange(ordinaryKiosk, signedIn.token as string, 'customer.view');
    const plain = await serviceToken(ordinaryHuman.body.access_token as string);
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    const plainClaims = (await jwtVerify(plain.body.access_token as string, jwks, { audience: TELLER_AUDIENCE }))
      .payload;
    assert.equal(plainClaims.break_glass, undefined);
    const plainEvent = (
      (await t.admin.ok('GET', '/v1/admin/events?type=service-token-issued&limit=1000')).events as Json[]
    ).find((e) => e.detail.jti === plainClaims.jti);
    assert.deepEqual(plainEvent?.reasons, ['service-action-allowed-for-operator']);

    // The policy no longer lets break-glass sessions view customers: the console exchange refuses, and so
    // does the service acting for that session (its actor_token, issued before, still verifies).
    await publishPolicy(t.admin, policyWith([]));
    try {
      const atConsole = await exchange(kiosk, redeemed.token as string, 'customer.view');
      assert.equal(atConsole.status, 403);
      assert.equal(atConsole.body.error.code, 'ACTION_DENIED');
      const refused = await serviceToken(human.body.access_token as string);
      assert.equal(refused.status, 403, JSON.stringify(refused.body));
      assert.equal(refused.body.error.code, 'SERVICE_ACTOR_INVALID');
      assert.deepEqual(refused.body.error.decision, { outcome: 'deny', reasons: ['break-glass'] });
      assert.equal(refused.body.access_token, undefined);
      const refusal = (await refusals()).find((e) => e.subject.operator === operatorId);
      assert.ok(refusal !== undefined, 'a service-token-refused event naming the operator');
      assert.deepEqual(refusal.reasons, ['service-actor-invalid', 'break-glass']);
      // The ordinary session is not capped.
      const stillPlain = await serviceToken(ordinaryHuman.body.access_token as string);
      assert.equal(stillPlain.status, 200, JSON.stringify(stillPlain.body));
    } finally {
      await publishPolicy(t.admin, policyWith(['customer.view']));
    }
  });
});
