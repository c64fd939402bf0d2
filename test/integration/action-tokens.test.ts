import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT, decodeJwt, generateKeyPair, importJWK, type JWK } from 'jose';
import {
  ActionTokenVerifier,
  RevocationSubscription,
  VerificationError,
  parseBearerChallenge,
  type Revocation,
} from '../../packages/verifier/src/index.js';
import {
  startTestBackend,
  TestConsole,
  assertError,
  httpJson,
  type Json,
  type TestBackend,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import type { SoftAuthenticator } from '../helpers/soft-authenticator.js';
import {
  TELLER_AUDIENCE,
  appKeyPair,
  exchange,
  publishPolicy,
  tellerPolicy,
} from '../helpers/action-token-fixtures.js';

const ACTIONS = {
  'customer.view': { level: 'presence' },
  'payment.approve': { level: 'verified', maxAgeSeconds: 300 },
} as const;

async function refusedWith(promise: Promise<unknown>, code: string): Promise<VerificationError> {
  const error = await promise.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof VerificationError, String(error));
  assert.equal(error.code, code, error.message);
  return error;
}

/** A revocation-stream login as the teller app signs it (docs/api.md); `iat` and `exp` in seconds. */
function streamLogin(key: Parameters<SignJWT['sign']>[0], jti: string, iat: number, exp: number): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer(TELLER_AUDIENCE)
    .setSubject(TELLER_AUDIENCE)
    .setAudience('urn:baton:token-revocations')
    .setJti(jti)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(key);
}

describe('action tokens: the exchange at the backend and the verifier at the app server', () => {
  let t: TestBackend;
  let console: TestConsole;
  let authenticator: SoftAuthenticator;
  let keys: { publicJwk: JWK; privateJwk: JWK };
  let verifier: ActionTokenVerifier;
  let session: Json;
  let assuranceToken: string;

  before(async () => {
    t = await startTestBackend();
    keys = await appKeyPair();
    await publishPolicy(t.admin, tellerPolicy(keys.publicJwk));
    console = await TestConsole.enrol(t.url, t.admin);
    ({ authenticator } = await enrolOperator(t.admin, console));
    // A tap without user verification: `presence`, enough to look a customer up, not to approve a payment.
    const signedIn = (await signIn(console, authenticator, { userVerified: false })).body as Json;
    session = signedIn.session;
    assuranceToken = signedIn.token;
    verifier = new ActionTokenVerifier({
      audience: TELLER_AUDIENCE,
      jwksUrl: `${t.url}/v1/tokens/jwks.json`,
      actions: ACTIONS,
    });
  });
  after(() => t.stop());

  it('issues a short-lived token for an allowed action that the verifier accepts, and records it', async () => {
    const result = await exchange(console, assuranceToken, 'customer.view');
    assert.equal(result.status, 200, JSON.stringify(result.body));
    assert.equal(result.body.token_type, 'Bearer');
    assert.equal(result.body.issued_token_type, 'urn:ietf:params:oauth:token-type:access_token');
    assert.equal(result.body.scope, 'customer.view');
    assert.ok(result.body.expires_in > 0 && result.body.expires_in <= 600);
    const claims = decodeJwt(result.body.access_token);
    assert.equal(claims.aud, TELLER_AUDIENCE);
    assert.equal(claims.sid, session.id);
    assert.equal(claims.console, console.id);
    assert.equal(claims.channel, 'branch-kiosk');
    assert.equal(claims.level, 'presence');
    assert.equal(typeof claims.jti, 'string');
    assert.equal(typeof claims.policy_version, 'number');
    assert.equal(claims.cnf, undefined, 'the assurance token is not handed on');

    const verified = await verifier.verify(result.body.access_token, 'customer.view');
    assert.equal(verified.operator, session.operatorId);
    assert.equal(verified.session, session.id);
    assert.equal(verified.level, 'presence');

    const events = (await t.admin.ok('GET', `/v1/admin/events?type=action-token-issued&session=${session.id}`)) as Json;
    assert.equal(events.events.length, 1);
    assert.equal(events.events[0].detail.jti, claims.jti);
    assert.equal(events.events[0].detail.audience, TELLER_AUDIENCE);
  });

  it('answers a step-up action with the RFC 9470 details, and issues after the operator steps up', async () => {
    const refused = await exchange(console, assuranceToken, 'payment.approve');
    assertError(refused, 403, 'ACTION_STEP_UP_REQUIRED');
    assert.equal(refused.body.error.decision.acr_values, 'phr');
    assert.equal(refused.body.error.decision.max_age, 300);
    assert.ok(refused.body.error.decision.reasons.includes('level-below-required'));

    const { options } = (await console.ok('POST', `/v1/sessions/${session.id}/step-up/options`, {
      action: 'payment.approve',
    })) as Json;
    const response = authenticator.assert(options, { userVerified: true });
    const stepped = (await console.ok('POST', `/v1/sessions/${session.id}/step-up/verify`, {
      action: 'payment.approve',
      response,
    })) as Json;
    assuranceToken = stepped.token;
    const issued = await exchange(console, assuranceToken, 'payment.approve');
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const verified = await verifier.verify(issued.body.access_token, 'payment.approve');
    assert.equal(verified.level, 'verified');
    assert.equal(verified.acr, 'phr');

    const refusals = (await t.admin.ok(
      'GET',
      `/v1/admin/events?type=action-token-refused&session=${session.id}`,
    )) as Json;
    assert.ok(
      refusals.events.some((e: Json) => e.outcome === 'step-up' && e.detail.code === 'ACTION_STEP_UP_REQUIRED'),
    );
  });

  it("refuses a denied action, an unknown audience, an action the app does not declare, and another console's token", async () => {
    assertError(await exchange(console, assuranceToken, 'account.close'), 403, 'ACTION_DENIED');
    assertError(await exchange(console, assuranceToken, 'customer.view', 'urn:bank:nobody'), 400, 'AUDIENCE_UNKNOWN');
    assertError(await exchange(console, assuranceToken, 'address.change'), 403, 'ACTION_NOT_FOR_AUDIENCE');
    const other = await TestConsole.enrol(t.url, t.admin);
    assertError(await exchange(other, assuranceToken, 'customer.view'), 401, 'SUBJECT_TOKEN_INVALID');
    assertError(
      await exchange(console, `${assuranceToken.slice(0, -4)}AAAA`, 'customer.view'),
      401,
      'SUBJECT_TOKEN_INVALID',
    );
    const badGrant = await console.request('POST', '/v1/tokens/exchange', {
      grant_type: 'client_credentials',
      subject_token: assuranceToken,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      audience: TELLER_AUDIENCE,
      scope: 'customer.view',
    });
    assertError(badGrant, 400, 'TOKEN_EXCHANGE_UNSUPPORTED');
  });

  it('the verifier refuses the wrong audience, the wrong action, an expired token and a too-old authentication', async () => {
    const token = ((await exchange(console, assuranceToken, 'payment.approve')).body as Json).access_token as string;
    const elsewhere = new ActionTokenVerifier({
      audience: 'urn:bank:loans',
      jwksUrl: `${t.url}/v1/tokens/jwks.json`,
      actions: ACTIONS,
    });
    await refusedWith(elsewhere.verify(token, 'payment.approve'), 'TOKEN_AUDIENCE_MISMATCH');
    const wrongAction = await refusedWith(verifier.verify(token, 'customer.view'), 'TOKEN_ACTION_MISMATCH');
    assert.equal(wrongAction.status, 403);
    assert.match(wrongAction.challenge(), /^Bearer error="insufficient_scope"/);

    const later = (seconds: number) =>
      new ActionTokenVerifier({
        audience: TELLER_AUDIENCE,
        jwksUrl: `${t.url}/v1/tokens/jwks.json`,
        actions: ACTIONS,
        clock: () => Date.now() + seconds * 1000,
      });
    await refusedWith(later(700).verify(token, 'payment.approve'), 'TOKEN_EXPIRED');
    // Still inside the token's 10 minutes, but the payment needs an authentication of the last 5.
    const old = await refusedWith(later(400).verify(token, 'payment.approve'), 'INSUFFICIENT_USER_AUTHENTICATION');
    assert.equal(old.status, 401);
    const challenge = parseBearerChallenge(old.challenge());
    assert.equal(challenge?.error, 'insufficient_user_authentication');
    assert.equal(challenge?.acr_values, 'phr phrh');
    assert.equal(challenge?.max_age, '300');
  });

  it('the verifier refuses a bad signature and a key Baton does not publish', async () => {
    const token = ((await exchange(console, assuranceToken, 'customer.view')).body as Json).access_token as string;
    const [h, p, s] = token.split('.') as [string, string, string];
    const flipped = `${h}.${p}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
    await refusedWith(verifier.verify(flipped, 'customer.view'), 'TOKEN_SIGNATURE_INVALID');
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ ...decodeJwt(token) })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'not-a-baton-key' })
      .sign(privateKey);
    await refusedWith(verifier.verify(forged, 'customer.view'), 'TOKEN_KEY_UNKNOWN');
  });

  it("refuses a revoked session's token as soon as the revocation is pushed, and the exchange refuses it too", async () => {
    const applied: Revocation[] = [];
    let notify: (() => void) | undefined;
    const subscription = new RevocationSubscription({
      batonUrl: t.url,
      audience: TELLER_AUDIENCE,
      privateKey: keys.privateJwk,
      onRevocation: (r) => {
        applied.push(r);
        notify?.();
      },
    });
    try {
      await subscription.ready;
      const live = new ActionTokenVerifier({
        audience: TELLER_AUDIENCE,
        jwksUrl: `${t.url}/v1/tokens/jwks.json`,
        actions: ACTIONS,
        revocations: subscription,
      });
      const token = ((await exchange(console, assuranceToken, 'customer.view')).body as Json).access_token as string;
      assert.equal((await live.verify(token, 'customer.view')).session, session.id);

      const pushed = new Promise<void>((resolve) => {
        notify = () => {
          if (applied.some((r) => r.kind === 'session' && r.targetId === session.id)) resolve();
        };
      });
      await t.admin.ok('POST', `/v1/admin/sessions/${session.id}/revoke`, { reason: 'card reported stolen' });
      await pushed;
      const revoked = await refusedWith(live.verify(token, 'customer.view'), 'TOKEN_REVOKED');
      assert.ok(decodeJwt(token).exp! * 1000 > Date.now(), 'refused before the token expired');
      assert.equal(revoked.status, 401);
      // Without the push the token would still pass until it expires: the stream is what refuses it.
      assert.equal((await verifier.verify(token, 'customer.view')).session, session.id);
      assertError(await exchange(console, assuranceToken, 'customer.view'), 409, 'SESSION_NOT_ACTIVE');
    } finally {
      subscription.close();
    }
  });

  it('refuses a revocation-stream login that does not verify with the app key, and a replayed one', async () => {
    const url = `${t.url}/v1/tokens/revocations`;
    const anonymous = await httpJson(url, { method: 'GET' });
    assertError(anonymous, 401, 'APP_AUTH_INVALID');
    const { privateKey } = await generateKeyPair('ES256');
    const now = Math.floor(Date.now() / 1000);
    const login = (key: Parameters<SignJWT['sign']>[0], jti: string) => streamLogin(key, jti, now, now + 60);
    const forged = await httpJson(url, {
      method: 'GET',
      headers: { authorization: `Bearer ${await login(privateKey, 'a')}` },
    });
    assertError(forged, 401, 'APP_AUTH_INVALID');

    const appKey = await importJWK({ ...keys.privateJwk, alg: 'ES256' }, 'ES256');
    const good = `Bearer ${await login(appKey, 'once')}`;
    const abort = new AbortController();
    const first = await fetch(url, { headers: { authorization: good }, signal: abort.signal });
    assert.equal(first.status, 200);
    assert.match(first.headers.get('content-type') ?? '', /^text\/event-stream/);
    abort.abort();
    const replayed = await httpJson(url, { method: 'GET', headers: { authorization: good } });
    assertError(replayed, 401, 'APP_AUTH_INVALID');
    assert.match(replayed.body.error.message, /used already/);
  });

  it('refuses a revocation-stream login issued in the future, and one that lives longer than 5 minutes', async () => {
    const url = `${t.url}/v1/tokens/revocations`;
    const appKey = await importJWK({ ...keys.privateJwk, alg: 'ES256' }, 'ES256');
    const now = Math.floor(Date.now() / 1000);
    const login = (jti: string, iat: number, exp: number) => streamLogin(appKey, jti, iat, exp);
    // A login that is accepted opens an endless stream: read the status, the body only of a refusal.
    const open = async (token: string) => {
      const abort = new AbortController();
      const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
      const body = (res.status === 200 ? {} : await res.json()) as Json;
      abort.abort();
      return { status: res.status, body };
    };

    // Signed today for next year: it would open the stream any time until then.
    const nextYear = now + 365 * 24 * 3600;
    const future = await open(await login('next-year', nextYear, nextYear + 300));
    assertError(future, 401, 'APP_AUTH_INVALID');
    assert.match(future.body.error.message, /issued in the future/);

    const longLived = await open(await login('long-lived', now, nextYear));
    assertError(longLived, 401, 'APP_AUTH_INVALID');
    assert.match(longLived.body.error.message, /longer than 5 minutes/);
  });
});
