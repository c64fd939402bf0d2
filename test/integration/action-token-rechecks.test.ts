import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestBackend, TestConsole, assertError, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { appKeyPair, exchange, publishPolicy, tellerPolicy } from '../helpers/action-token-fixtures.js';

/**
 * The exchange re-reads the session, its operator and its passkey in one statement
 * (backend/tokens/exchange-subject.ts) and verifies the subject token with node:crypto
 * (backend/tokens/subject-token.ts): what an attacker or a revoked operator sees.
 */
describe('token exchange re-checks', () => {
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend();
    const keys = await appKeyPair();
    await publishPolicy(t.admin, tellerPolicy(keys.publicJwk));
  });
  after(() => t.stop());

  async function seated() {
    const console = await TestConsole.enrol(t.url, t.admin);
    const enrolled = await enrolOperator(t.admin, console);
    const signedIn = (await signIn(console, enrolled.authenticator)).body as Json;
    const token = signedIn.token as string;
    assert.equal((await exchange(console, token, 'customer.view')).status, 200);
    return { console, token, ...enrolled };
  }

  it('refuses a session whose passkey was suspended or revoked, or whose operator was revoked, in the store meanwhile', async () => {
    const store = t.backend.store;
    // Only the credential or operator row changes (as another node's unit of work may leave it for an
    // instant): the session itself is still active, so the re-check is what refuses.
    const suspended = await seated();
    await store.operators.suspendCredential(suspended.credentialId, Date.now(), 'test');
    assertError(await exchange(suspended.console, suspended.token, 'customer.view'), 403, 'CREDENTIAL_SUSPENDED');

    const revokedKey = await seated();
    await store.operators.revokeCredential(revokedKey.credentialId, Date.now(), 'test');
    assertError(await exchange(revokedKey.console, revokedKey.token, 'customer.view'), 403, 'CREDENTIAL_REVOKED');

    const revokedOperator = await seated();
    await store.operators.revoke(revokedOperator.operatorId, Date.now(), 'test');
    assertError(
      await exchange(revokedOperator.console, revokedOperator.token, 'customer.view'),
      403,
      'OPERATOR_REVOKED',
    );
  });

  for (const kind of ['operator', 'console', 'session'] as const) {
    it(`refuses the token, never handed out, when the ${kind} is revoked while it is being signed`, async () => {
      const seat = await seated();
      const sessionId = (await t.backend.store.sessions.liveOnConsole(seat.console.id))[0]?.id ?? '';
      const target = { operator: seat.operatorId, console: seat.console.id, session: sessionId }[kind];
      const issuer = t.backend.services.actionTokens.issuer;
      const sign = issuer.sign.bind(issuer);
      const signed: string[] = [];
      // The revocation commits after the exchange read the session as active, before it recorded the issuance.
      issuer.sign = async (claims) => {
        issuer.sign = sign;
        await t.admin.ok('POST', `/v1/admin/${kind}s/${target}/revoke`, { reason: 'reported stolen' });
        const issued = await sign(claims);
        signed.push(issued.jti);
        return issued;
      };
      try {
        const raced = await exchange(seat.console, seat.token, 'customer.view');
        assertError(raced, 409, 'SESSION_NOT_ACTIVE');
        assert.equal(raced.body.access_token, undefined);
      } finally {
        issuer.sign = sign;
      }
      assert.equal(signed.length, 1, 'the token was signed, and never handed out');
      const events = async (type: string) =>
        ((await t.admin.ok('GET', `/v1/admin/events?type=${type}&limit=1000`)).events as Json[]).filter(
          (e) => e.subject.session === sessionId,
        );
      assert.ok(!(await events('action-token-issued')).some((e) => e.detail.jti === signed[0]));
      const refused = (await events('action-token-refused')).map((e) => e.detail.code);
      assert.ok(refused.includes('SESSION_NOT_ACTIVE'), JSON.stringify(refused));
    });
  }

  it('refuses a subject token that is unsigned, re-signed under another alg, or carries claims it was not signed with', async () => {
    const { console, token } = await seated();
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const decoded = JSON.parse(Buffer.from(header, 'base64url').toString()) as Json;
    const none = `${b64({ ...decoded, alg: 'none' })}.${payload}.`;
    assertError(await exchange(console, none, 'customer.view'), 401, 'SUBJECT_TOKEN_INVALID');
    const hs = `${b64({ ...decoded, alg: 'HS256' })}.${payload}.${signature}`;
    assertError(await exchange(console, hs, 'customer.view'), 401, 'SUBJECT_TOKEN_INVALID');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Json;
    const older = `${header}.${b64({ ...claims, exp: claims.exp + 3600 })}.${signature}`;
    assertError(await exchange(console, older, 'customer.view'), 401, 'SUBJECT_TOKEN_INVALID');
    // The untouched token still works: nothing above was remembered against it.
    assert.equal((await exchange(console, token, 'customer.view')).status, 200);
  });
});
