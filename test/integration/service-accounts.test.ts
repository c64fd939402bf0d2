import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  SignJWT,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  type CryptoKey,
  type JWK,
  type KeyObject,
} from 'jose';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import {
  CLIENT_ASSERTION_TYPE_JWT_BEARER,
  GRANT_CLIENT_CREDENTIALS,
  GRANT_TOKEN_EXCHANGE,
  SERVICE_ENROLMENT_PROOF_AUDIENCE,
  SERVICE_KEY_ROTATION_PROOF_AUDIENCE,
} from '../../shared/service-accounts-api.js';
import { KEY_ENCRYPTION_KEY_FILE } from '../../backend/crypto/key-encryption-key.js';
import { sha256Hex } from '../../backend/crypto/secrets.js';
import {
  assertError,
  httpJson,
  startTestBackend,
  type HttpResult,
  type Json,
  type TestBackend,
  TestConsole,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { enrolService } from '../helpers/service-account-fixtures.js';

type PrivateKey = CryptoKey | KeyObject;

const PAYMENTS = 'urn:bank:payments';
const REVOCATION_STREAM_AUDIENCE = 'urn:baton:token-revocations';

/** A service as the platform engineer's batch job holds it: its id and its private key. */
interface TestService {
  id: string;
  kid: string;
  privateKey: PrivateKey;
}

async function newKey(): Promise<{ privateKey: PrivateKey; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicJwk: { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x, y: publicJwk.y } };
}

/** Sends a form-encoded request, as an OAuth client library does (RFC 6749 §4.4.2). */
async function postForm(url: string, params: Record<string, string>): Promise<HttpResult<Json>> {
  return httpJson(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
}

describe('service accounts: enrolment, RFC 7523 client assertions, action tokens, rotation, revocation', () => {
  let t: TestBackend;
  /** The backend's clock runs `offset` ms ahead of real time (an expired enrolment token without waiting). */
  let offset = 0;
  let tokenEndpoint: string;
  let appKey: { privateKey: PrivateKey; publicJwk: JWK };
  let batch: TestService;

  async function issueEnrolmentToken(actions: string[], ttlSeconds?: number): Promise<string> {
    const body = await t.admin.ok('POST', '/v1/admin/service-enrolment-tokens', {
      name: 'nightly payments batch',
      actions,
      ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
    });
    return (body as { token: string }).token;
  }

  async function enrolRequest(
    token: string,
    key: { privateKey: PrivateKey; publicJwk: JWK },
    proofFor: { aud?: string; nonce?: string; signer?: PrivateKey } = {},
  ): Promise<HttpResult<Json>> {
    const proof = await new SignJWT({ nonce: proofFor.nonce ?? sha256Hex(token) })
      .setProtectedHeader({ alg: 'ES256' })
      .setAudience(proofFor.aud ?? SERVICE_ENROLMENT_PROOF_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('2m')
      .sign(proofFor.signer ?? key.privateKey);
    return httpJson(`${t.url}/v1/services/enrol`, {
      method: 'POST',
      body: JSON.stringify({ token, publicKey: key.publicJwk, proof }),
    });
  }

  async function enrol(actions: string[]): Promise<TestService> {
    const key = await newKey();
    const result = await enrolRequest(await issueEnrolmentToken(actions), key);
    assert.equal(result.status, 201, JSON.stringify(result.body));
    assert.equal(result.body.tokenEndpoint, tokenEndpoint, 'the enrolment names the token endpoint to sign for');
    assert.equal(result.body.keyRotationEndpoint, `${t.url}/v1/services/${result.body.serviceId}/keys`);
    return { id: result.body.serviceId, kid: result.body.kid, privateKey: key.privateKey };
  }

  /** A client assertion (RFC 7523 §3): iss = sub = the client id, aud = the token endpoint, a fresh jti, short exp. */
  function assertion(
    service: { id: string; kid?: string; privateKey: PrivateKey },
    claims: { aud?: string; exp?: number; jti?: string; iss?: string } = {},
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', ...(service.kid === undefined ? {} : { kid: service.kid }) })
      .setIssuer(claims.iss ?? service.id)
      .setSubject(claims.iss ?? service.id)
      .setAudience(claims.aud ?? tokenEndpoint)
      .setJti(claims.jti ?? randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(claims.exp ?? now + 60)
      .sign(service.privateKey);
  }

  function tokenRequest(
    clientAssertion: string,
    params: Record<string, string> = {},
    url = tokenEndpoint,
  ): Promise<HttpResult<Json>> {
    return postForm(url, {
      grant_type: GRANT_CLIENT_CREDENTIALS,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: clientAssertion,
      audience: PAYMENTS,
      action: 'customer.view',
      ...params,
    });
  }

  async function refusals(): Promise<Json[]> {
    const body = await t.admin.ok('GET', '/v1/admin/events?type=service-token-refused&limit=1000');
    return body.events as Json[];
  }

  before(async () => {
    t = await startTestBackend({}, { clock: () => Date.now() + offset });
    tokenEndpoint = `${t.url}/v1/services/token`;
    appKey = await newKey();
    const current = (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number; policy: Policy };
    const policy: Policy = {
      ...DEFAULT_POLICY,
      apps: [
        {
          audience: PAYMENTS,
          name: 'Payments',
          actions: ['customer.view', 'payment.approve'],
          revocationKey: appKey.publicJwk as { kty: 'EC'; crv: 'P-256'; x: string; y: string },
        },
      ],
      service: {
        tokenTtlSeconds: 120,
        actions: { 'customer.view': { actor: 'none' }, 'payment.approve': { actor: 'required' } },
      },
    };
    await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
    batch = await enrol(['customer.view', 'payment.approve']);
  });
  after(() => t.stop());

  describe('enrolment', () => {
    it('refuses an unknown token, a used one, an expired one and a proof not made with the key', async () => {
      const key = await newKey();
      assertError(await enrolRequest('bst_not-a-token-anyone-issued', key), 401, 'ENROLMENT_TOKEN_INVALID');

      const token = await issueEnrolmentToken(['customer.view']);
      const other = await newKey();
      assertError(await enrolRequest(token, key, { signer: other.privateKey }), 400, 'SERVICE_KEY_PROOF_INVALID');
      assertError(
        await enrolRequest(token, key, { nonce: sha256Hex('another token') }),
        400,
        'SERVICE_KEY_PROOF_INVALID',
      );
      // The refused attempts did not use the token up.
      assert.equal((await enrolRequest(token, key)).status, 201);
      assertError(await enrolRequest(token, await newKey()), 401, 'ENROLMENT_TOKEN_USED');

      const shortLived = await issueEnrolmentToken(['customer.view'], 60);
      offset = 61_000;
      try {
        assertError(await enrolRequest(shortLived, await newKey()), 401, 'ENROLMENT_TOKEN_EXPIRED');
      } finally {
        offset = 0;
      }
    });

    it('refuses an enrolment token for an action the policy does not have', async () => {
      const result = await t.admin.request('POST', '/v1/admin/service-enrolment-tokens', {
        name: 'x',
        actions: ['vault.open'],
      });
      assertError(result, 400, 'SCHEMA_INVALID');
    });
  });

  describe('the token endpoint', () => {
    it('issues a short-lived action token for an audience and an action, signed with the action-token keys', async () => {
      const result = await tokenRequest(await assertion(batch));
      assert.equal(result.status, 200, JSON.stringify(result.body));
      assert.equal(result.body.token_type, 'Bearer');
      assert.equal(result.body.scope, 'customer.view');
      assert.ok(result.body.expires_in <= 120);
      const jwks = (await httpJson(`${t.url}/v1/tokens/jwks.json`, { method: 'GET' })).body;
      const { payload } = await jwtVerify(result.body.access_token as string, createLocalJWKSet(jwks), {
        audience: PAYMENTS,
        issuer: 'urn:baton:backend',
      });
      assert.equal(payload.sub, batch.id);
      assert.equal(payload.client_id, batch.id);
      assert.equal(payload.action, 'customer.view');
      assert.equal(payload.channel, 'service');
      assert.equal(payload.act, undefined);
      assert.ok((payload.exp ?? 0) - (payload.iat ?? 0) <= 120);

      // JSON works as well as a form; an assertion without kid is tried against the service's current key.
      const json = await httpJson(tokenEndpoint, {
        method: 'POST',
        body: JSON.stringify({
          grant_type: GRANT_CLIENT_CREDENTIALS,
          client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
          client_assertion: await assertion({ id: batch.id, privateKey: batch.privateKey }),
          audience: PAYMENTS,
          scope: 'customer.view',
        }),
      });
      assert.equal(json.status, 200, JSON.stringify(json.body));
    });

    it('refuses a replayed client assertion, on this node and on another one of the same database', async () => {
      const once = await assertion(batch);
      assert.equal((await tokenRequest(once)).status, 200);
      assertError(await tokenRequest(once), 401, 'SERVICE_ASSERTION_REPLAYED');
      if (t.databaseUrl === undefined) return; // one process owns an embedded database
      // A second node: its own data directory with the cluster's key-encryption key, as IT copies it.
      const dataDir = mkdtempSync(join(tmpdir(), 'baton-test-'));
      copyFileSync(join(t.dataDir, KEY_ENCRYPTION_KEY_FILE), join(dataDir, KEY_ENCRYPTION_KEY_FILE));
      const second = await startTestBackend({ dataDir, databaseUrl: t.databaseUrl }, { adminToken: t.admin.token });
      try {
        const twice = await assertion(batch);
        assert.equal((await tokenRequest(twice)).status, 200);
        assertError(
          await tokenRequest(twice, {}, `${second.url}/v1/services/token`),
          401,
          'SERVICE_ASSERTION_AUDIENCE', // the other node's URL is another audience…
        );
        const forSecond = await assertion(batch, { aud: 'urn:baton:backend' });
        assert.equal((await tokenRequest(forSecond)).status, 200);
        // …and one that both accept (Baton's issuer) is used up on the first.
        assertError(
          await tokenRequest(forSecond, {}, `${second.url}/v1/services/token`),
          401,
          'SERVICE_ASSERTION_REPLAYED',
        );
      } finally {
        await second.stop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });

    it('refuses a wrong audience, an expired or too long-lived assertion, a bad signature, an unknown client', async () => {
      const now = Math.floor(Date.now() / 1000);
      assertError(
        await tokenRequest(await assertion(batch, { aud: 'https://login.other.example/token' })),
        401,
        'SERVICE_ASSERTION_AUDIENCE',
      );
      assertError(await tokenRequest(await assertion(batch, { exp: now - 120 })), 401, 'SERVICE_ASSERTION_EXPIRED');
      assertError(await tokenRequest(await assertion(batch, { exp: now + 3600 })), 401, 'SERVICE_ASSERTION_EXPIRED');
      const stranger = await newKey();
      assertError(
        await tokenRequest(await assertion({ id: batch.id, kid: batch.kid, privateKey: stranger.privateKey })),
        401,
        'SERVICE_ASSERTION_SIGNATURE_INVALID',
      );
      assertError(
        await tokenRequest(await assertion({ id: `svc_${'0'.repeat(32)}`, privateKey: stranger.privateKey })),
        401,
        'SERVICE_UNKNOWN',
      );
      assertError(
        await tokenRequest(await assertion(batch), {
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer',
        }),
        401,
        'SERVICE_ASSERTION_INVALID',
      );
      assertError(
        await tokenRequest(await assertion(batch), { grant_type: 'password' }),
        400,
        'SERVICE_GRANT_UNSUPPORTED',
      );
    });

    it('refuses an action outside the service’s enrolment or the policy, and an audience that is no app', async () => {
      const viewer = await enrol(['customer.view']);
      assertError(
        await tokenRequest(await assertion(viewer), { action: 'payment.approve' }),
        403,
        'SERVICE_ACTION_NOT_ALLOWED',
      );
      assertError(
        await tokenRequest(await assertion(batch), { action: 'address.change' }),
        403,
        'SERVICE_ACTION_NOT_ALLOWED',
      );
      assertError(
        await tokenRequest(await assertion(batch), { audience: 'urn:bank:unknown' }),
        400,
        'AUDIENCE_UNKNOWN',
      );
    });

    it('refuses an action the policy ties to a human session without a valid actor_token', async () => {
      assertError(
        await tokenRequest(await assertion(batch), { action: 'payment.approve' }),
        403,
        'SERVICE_ACTOR_REQUIRED',
      );
      assertError(
        await tokenRequest(await assertion(batch), { action: 'payment.approve', grant_type: GRANT_TOKEN_EXCHANGE }),
        403,
        'SERVICE_ACTOR_REQUIRED',
      );
      // A token the service signed itself is no human's action token.
      const forged = await assertion(batch);
      assertError(
        await tokenRequest(await assertion(batch), {
          action: 'payment.approve',
          grant_type: GRANT_TOKEN_EXCHANGE,
          actor_token: forged,
          actor_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        }),
        403,
        'SERVICE_ACTOR_INVALID',
      );
    });

    it('ties a service action to a live human session: act carries the operator, a revoked session ends it', async () => {
      const console = await TestConsole.enrol(t.url, t.admin);
      const { operatorId, authenticator } = await enrolOperator(t.admin, console);
      const signedIn = (await signIn(console, authenticator, { userVerified: true })).body as Json;
      const human = async (action: string) =>
        (
          (await console.ok('POST', '/v1/tokens/exchange', {
            grant_type: GRANT_TOKEN_EXCHANGE,
            subject_token: signedIn.token,
            subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
            audience: PAYMENTS,
            scope: action,
          })) as Json
        ).access_token as string;
      const approval = await human('payment.approve');
      const exchangeFor = async (actorToken: string) =>
        tokenRequest(await assertion(batch), {
          grant_type: GRANT_TOKEN_EXCHANGE,
          action: 'payment.approve',
          actor_token: actorToken,
          actor_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        });
      const issued = await exchangeFor(approval);
      assert.equal(issued.status, 200, JSON.stringify(issued.body));
      const jwks = (await httpJson(`${t.url}/v1/tokens/jwks.json`, { method: 'GET' })).body;
      const { payload } = await jwtVerify(issued.body.access_token as string, createLocalJWKSet(jwks), {
        audience: PAYMENTS,
      });
      assert.equal(payload.sub, batch.id);
      assert.deepEqual(payload.act, { sub: operatorId, sid: signedIn.session.id, console: console.id });
      assert.equal(payload.sid, signedIn.session.id, 'a revocation of the session reaches the service token too');
      assert.equal(payload.level, 'verified');

      // The human's token for another action does not stand for this one.
      assertError(await exchangeFor(await human('customer.view')), 403, 'SERVICE_ACTOR_INVALID');
      // Once the session is revoked, its token no longer ties anything to a live human.
      await t.admin.ok('POST', `/v1/admin/sessions/${signedIn.session.id as string}/revoke`, { reason: 'left' });
      assertError(await exchangeFor(approval), 403, 'SERVICE_ACTOR_INVALID');
    });

    it('records every issuance and every refusal as an event with its code, and counts them by action', async () => {
      const events = await refusals();
      const codes = new Set(events.map((e) => e.detail?.code as string));
      for (const code of [
        'SERVICE_ASSERTION_REPLAYED',
        'SERVICE_ASSERTION_AUDIENCE',
        'SERVICE_ASSERTION_EXPIRED',
        'SERVICE_ASSERTION_SIGNATURE_INVALID',
        'SERVICE_UNKNOWN',
        'SERVICE_ACTOR_REQUIRED',
        'SERVICE_ACTOR_INVALID',
        'SERVICE_ACTION_NOT_ALLOWED',
      ]) {
        assert.ok(codes.has(code), `a service-token-refused event with ${code}`);
      }
      const unknown = events.find((e) => e.detail?.code === 'SERVICE_UNKNOWN');
      assert.equal(unknown.subject.service, undefined, 'an unauthenticated caller is not recorded as a service');
      assert.equal(unknown.detail.claimedClient, `svc_${'0'.repeat(32)}`);
      const issued = (await t.admin.ok('GET', '/v1/admin/events?type=service-token-issued&limit=1000'))
        .events as Json[];
      assert.ok(issued.length >= 3);
      assert.ok(issued.every((e) => typeof e.subject.service === 'string'));
      const actBound = issued.find((e) => e.detail.action === 'payment.approve');
      assert.equal(actBound.subject.service, batch.id);
      assert.equal(typeof actBound.subject.operator, 'string', 'the audit trail names the human it acted for');
      assert.ok(issued.every((e) => typeof e.detail.jti === 'string' && typeof e.detail.action === 'string'));

      const { services } = await t.admin.ok('GET', '/v1/admin/services');
      const view = (services as Json[]).find((s) => s.id === batch.id);
      assert.equal(view.name, 'nightly payments batch');
      assert.deepEqual(
        view.keys.map((k: Json) => k.kid),
        [batch.kid],
      );
      const viewCounts = view.tokens.find((c: Json) => c.action === 'customer.view');
      assert.ok(viewCounts.issued >= 3);
      assert.ok(view.lastUsedAt !== null);
      const approve = view.tokens.find((c: Json) => c.action === 'payment.approve');
      assert.ok(approve.refused >= 2);
    });
  });

  describe('key rotation', () => {
    it('is signed by the current key; the new key proves possession; the old key stops working at once', async () => {
      const service = await enrol(['customer.view']);
      const next = await newKey();
      const proof = (sub: string, signer: PrivateKey) =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'ES256' })
          .setSubject(sub)
          .setAudience(SERVICE_KEY_ROTATION_PROOF_AUDIENCE)
          .setIssuedAt()
          .setExpirationTime('2m')
          .sign(signer);
      const rotate = async (signedBy: TestService, newProof: string) =>
        postForm(`${t.url}/v1/services/${service.id}/keys`, {
          client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
          client_assertion: await assertion(signedBy),
          publicKey: '',
          proof: newProof,
        });
      // Form bodies cannot carry the JWK object: rotation is JSON, its assertion for this endpoint.
      const rotateJson = async (signedBy: TestService, newProof: string) =>
        httpJson(`${t.url}/v1/services/${service.id}/keys`, {
          method: 'POST',
          body: JSON.stringify({
            client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
            client_assertion: await assertion(signedBy, { aud: `${t.url}/v1/services/${service.id}/keys` }),
            publicKey: next.publicJwk,
            proof: newProof,
          }),
        });
      assertError(await rotate(service, await proof(service.id, next.privateKey)), 400, 'SCHEMA_INVALID');
      const stranger = { id: service.id, privateKey: (await newKey()).privateKey };
      assertError(
        await rotateJson(stranger as TestService, await proof(service.id, next.privateKey)),
        401,
        'SERVICE_ASSERTION_SIGNATURE_INVALID',
      );
      assertError(
        await rotateJson(service, await proof(service.id, service.privateKey)),
        400,
        'SERVICE_KEY_PROOF_INVALID',
      );
      const rotated = await rotateJson(service, await proof(service.id, next.privateKey));
      assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
      assert.deepEqual(rotated.body.retired, [service.kid]);

      assertError(await tokenRequest(await assertion(service)), 401, 'SERVICE_ASSERTION_SIGNATURE_INVALID');
      const renewed = { id: service.id, kid: rotated.body.kid as string, privateKey: next.privateKey };
      assert.equal((await tokenRequest(await assertion(renewed))).status, 200);
      const rotations = (await t.admin.ok('GET', '/v1/admin/events?type=service-key-rotated&limit=10'))
        .events as Json[];
      assert.ok(rotations.some((e) => e.subject.service === service.id && e.detail.previousKid === service.kid));
    });
  });

  describe('revocation', () => {
    it('refuses the next token request at once and tells app servers on the revocation stream', async () => {
      const service = await enrol(['customer.view']);
      const live = await tokenRequest(await assertion(service));
      assert.equal(live.status, 200);

      // The app server follows Baton's revocation stream, logged in with its policy key.
      const now = Math.floor(Date.now() / 1000);
      const login = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer(PAYMENTS)
        .setSubject(PAYMENTS)
        .setAudience(REVOCATION_STREAM_AUDIENCE)
        .setJti(randomUUID())
        .setIssuedAt(now)
        .setExpirationTime(now + 60)
        .sign(appKey.privateKey);
      const controller = new AbortController();
      const stream = await fetch(`${t.url}/v1/tokens/revocations`, {
        headers: { authorization: `Bearer ${login}` },
        signal: controller.signal,
      });
      assert.equal(stream.status, 200);
      const reader = stream.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      const revocationFor = async (id: string): Promise<Json> => {
        for (;;) {
          for (const block of text.split('\n\n')) {
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (/^event: revocation$/m.test(block) && data !== undefined) {
              const parsed = JSON.parse(data) as Json;
              if (parsed.targetId === id) return parsed;
            }
          }
          const { value, done } = await reader.read();
          if (done) throw new Error(`the stream ended before the revocation of ${id}: ${text}`);
          text += decoder.decode(value, { stream: true });
        }
      };
      try {
        // Nothing of this service on the stream before the revocation (the hello comes first).
        while (!text.includes('event: hello')) {
          const { value } = await reader.read();
          text += decoder.decode(value, { stream: true });
        }
        assert.ok(!text.includes(service.id));

        const revoked = await t.admin.ok('POST', `/v1/admin/services/${service.id}/revoke`, {
          reason: 'job decommissioned',
        });
        assert.equal(revoked.tokensRevoked, 1);
        const pushed = await revocationFor(service.id);
        assert.equal(pushed.kind, 'service');
        assert.equal(pushed.targetId, service.id);
        assert.equal(pushed.operatorId, null);

        assertError(await tokenRequest(await assertion(service)), 403, 'SERVICE_REVOKED');
        assertError(
          await t.admin.request('POST', `/v1/admin/services/${service.id}/revoke`, { reason: 'again' }),
          403,
          'SERVICE_REVOKED',
        );
        const events = (await t.admin.ok('GET', '/v1/admin/events?type=service-revoked&limit=10')).events as Json[];
        assert.ok(
          events.some((e) => e.subject.service === service.id && e.detail.reason_admin === 'job decommissioned'),
        );
      } finally {
        controller.abort();
        await reader.cancel().catch(() => undefined);
      }
    });
  });
});

/**
 * The assertion's `aud` must be Baton's token endpoint at its configured public origin (`adminOrigin`),
 * or Baton's issuer: never what the caller's `Host` / `X-Forwarded-Proto` say. Otherwise an assertion
 * a service made for another server's token endpoint (a DR or staging copy sharing its ids and keys)
 * would be accepted here by sending it with that server's name in `Host`.
 */
describe('service accounts: the assertion audience is the configured token endpoint, not the request’s Host', () => {
  const PUBLIC_ORIGIN = 'https://baton.bank.example';
  const CONFIGURED_ENDPOINT = `${PUBLIC_ORIGIN}/v1/services/token`;
  let t: TestBackend;
  let service: TestService;
  let enrolmentAnswer: Json;

  function assertion(aud: string): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: service.kid })
      .setIssuer(service.id)
      .setSubject(service.id)
      .setAudience(aud)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(service.privateKey);
  }

  /** POSTs to this backend's socket with the given `Host` and `X-Forwarded-Proto` (fetch will not set `Host`). */
  function tokenRequestAs(aud: string, headers: Record<string, string>): Promise<HttpResult<Json>> {
    return assertion(aud).then(
      (clientAssertion) =>
        new Promise((resolve, reject) => {
          const body = new URLSearchParams({
            grant_type: GRANT_CLIENT_CREDENTIALS,
            client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
            client_assertion: clientAssertion,
            audience: PAYMENTS,
            action: 'customer.view',
          }).toString();
          const req = request(
            {
              host: '127.0.0.1',
              port: new URL(t.url).port,
              path: '/v1/services/token',
              method: 'POST',
              headers: {
                'content-type': 'application/x-www-form-urlencoded',
                'content-length': Buffer.byteLength(body),
                ...headers,
              },
            },
            (res) => {
              let text = '';
              res.setEncoding('utf8');
              res.on('data', (chunk: string) => (text += chunk));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Json }));
            },
          );
          req.on('error', reject);
          req.end(body);
        }),
    );
  }

  before(async () => {
    t = await startTestBackend({ adminOrigin: PUBLIC_ORIGIN });
    const appKey = await newKey();
    const current = (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number; policy: Policy };
    const policy: Policy = {
      ...DEFAULT_POLICY,
      apps: [
        {
          audience: PAYMENTS,
          name: 'Payments',
          actions: ['customer.view'],
          revocationKey: appKey.publicJwk as { kty: 'EC'; crv: 'P-256'; x: string; y: string },
        },
      ],
      service: { actions: { 'customer.view': { actor: 'none' } } },
    };
    await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
    // Reached on localhost (as behind a proxy); the answer names the configured endpoint.
    const enrolled = await enrolService(t, 'nightly payments batch', ['customer.view']);
    enrolmentAnswer = enrolled.answer;
    service = { id: enrolled.id, kid: enrolled.kid, privateKey: enrolled.privateKey };
  });
  after(() => t.stop());

  it('names the configured endpoint in the enrolment answer, though reached on another host', () => {
    assert.equal(enrolmentAnswer.tokenEndpoint, CONFIGURED_ENDPOINT);
  });

  it('accepts the configured endpoint (or the issuer) whatever Host the request came with', async () => {
    const jwks = createLocalJWKSet((await httpJson(`${t.url}/v1/tokens/jwks.json`, { method: 'GET' })).body);
    for (const aud of [CONFIGURED_ENDPOINT, 'urn:baton:backend']) {
      const issued = await tokenRequestAs(aud, { host: new URL(t.url).host });
      assert.equal(issued.status, 200, `${aud}: ${JSON.stringify(issued.body)}`);
      const { payload } = await jwtVerify(issued.body.access_token as string, jwks, { audience: PAYMENTS });
      assert.equal(payload.sub, service.id);
    }
  });

  it('refuses an assertion made for another server’s token endpoint, even sent with that server’s Host', async () => {
    const before = (await t.admin.ok('GET', '/v1/admin/events?type=service-token-refused&limit=1000')).events as Json[];
    const elsewhere = 'https://idp.other-tenant.example/v1/services/token';
    const cases: { aud: string; headers: Record<string, string> }[] = [
      { aud: elsewhere, headers: { host: 'idp.other-tenant.example', 'x-forwarded-proto': 'https' } },
      // The URL the caller really reached (not the configured one), in either scheme.
      { aud: `${t.url}/v1/services/token`, headers: { host: new URL(t.url).host } },
      {
        aud: `${t.url.replace(/^http:/, 'https:')}/v1/services/token`,
        headers: { host: new URL(t.url).host, 'x-forwarded-proto': 'https' },
      },
      // The configured host in the other scheme.
      { aud: CONFIGURED_ENDPOINT.replace(/^https:/, 'http:'), headers: { host: 'baton.bank.example' } },
    ];
    for (const { aud, headers } of cases) {
      const refused = await tokenRequestAs(aud, headers);
      assertError(refused, 401, 'SERVICE_ASSERTION_AUDIENCE');
      assert.equal(refused.body.access_token, undefined);
    }
    const after = (await t.admin.ok('GET', '/v1/admin/events?type=service-token-refused&limit=1000')).events as Json[];
    const fresh = after.filter((e) => !before.some((b) => b.id === e.id));
    assert.equal(fresh.length, cases.length, 'a service-token-refused event for each');
    for (const e of fresh) {
      assert.equal(e.detail.code, 'SERVICE_ASSERTION_AUDIENCE');
      // Signed with the service's key (only the audience is wrong): the event is the service's, nothing merely claimed.
      assert.equal(e.subject.service, service.id);
      assert.equal(e.detail.claimedClient, undefined);
    }
  });
});
