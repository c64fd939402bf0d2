import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { ConformanceReceiver } from '../helpers/ssf-receiver.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const ISSUER = 'https://transmitter.test.example';
const AUDIENCE = 'https://receiver.test.example';

/**
 * The conformance receiver (test/helpers/ssf-receiver.ts) is what the transmitter's tests trust to say a SET
 * follows SSF 1.0 and the CAEP Interoperability Profile. Here it is fed SETs signed with real keys, one rule
 * broken at a time: it must refuse each (with RFC 8935's error code) and accept the SET that breaks none.
 */
describe('the SSF conformance receiver refuses what the rules refuse', () => {
  let server: Server;
  let jwksUri: string;
  let rsa: { privateKey: CryptoKey; kid: string };
  const published: JWK[] = [];

  before(async () => {
    const key = await generateKeyPair('RS256', { modulusLength: 2048 });
    rsa = { privateKey: key.privateKey, kid: 'rsa-1' };
    published.push({ ...(await exportJWK(key.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' });
    const ec = await generateKeyPair('ES256');
    published.push({ ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' });
    ecKey = ec.privateKey;
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    jwksUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  let ecKey: CryptoKey;

  const receiver = () => new ConformanceReceiver({ issuer: ISSUER, audience: AUDIENCE, jwksUri });

  /** A SET that follows every rule: one CAEP session-revoked, complex sub_id, no sub, no exp. */
  function goodClaims(): JWTPayload & Record<string, unknown> {
    return {
      iss: ISSUER,
      aud: AUDIENCE,
      iat: Math.floor(Date.now() / 1000),
      jti: randomUUID(),
      txn: randomUUID(),
      sub_id: {
        format: 'complex',
        user: { format: 'iss_sub', iss: ISSUER, sub: 'op-1' },
        session: { format: 'opaque', id: 'sess-1' },
      },
      events: {
        [`${CAEP}session-revoked`]: {
          event_timestamp: Math.floor(Date.now() / 1000),
          initiating_entity: 'admin',
          reason_admin: { en: 'left the bank' },
        },
      },
    };
  }

  async function sign(
    claims: Record<string, unknown>,
    header: Record<string, unknown> = {},
    key: CryptoKey = rsa.privateKey,
  ): Promise<string> {
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: rsa.kid, typ: 'secevent+jwt', ...header } as never)
      .sign(key);
  }

  async function refused(jwt: string, err: string, description: RegExp, r = receiver()): Promise<void> {
    await assert.rejects(r.check(jwt), (error: { err?: string; description?: string }) => {
      assert.equal(error.err, err, error.description);
      assert.match(String(error.description), description);
      return true;
    });
  }

  it('accepts a SET that follows every rule', async () => {
    const claims = goodClaims();
    const set = await receiver().check(await sign(claims));
    assert.equal(set.jti, claims.jti);
    assert.equal(set.type, `${CAEP}session-revoked`);
    assert.deepEqual(set.event.reason_admin, { en: 'left the bank' });
  });

  it('refuses a typ other than secevent+jwt, and a missing typ', async () => {
    await refused(await sign(goodClaims(), { typ: 'JWT' }), 'invalid_request', /typ must be secevent\+jwt/);
    await refused(await sign(goodClaims(), { typ: undefined }), 'invalid_request', /typ must be secevent\+jwt/);
  });

  it('refuses a SET with a sub claim, or with an exp claim', async () => {
    await refused(await sign({ ...goodClaims(), sub: 'op-1' }), 'invalid_request', /sub is forbidden/);
    const exp = Math.floor(Date.now() / 1000) + 3600; // in the future: only the rule refuses it, not its age
    await refused(await sign({ ...goodClaims(), exp }), 'invalid_request', /exp is forbidden/);
  });

  it('refuses two events in one SET, and none', async () => {
    const two = goodClaims();
    two.events = {
      ...(two.events as Record<string, unknown>),
      [`${CAEP}session-presented`]: { event_timestamp: Math.floor(Date.now() / 1000) },
    };
    await refused(await sign(two), 'invalid_request', /exactly one event per SET, got 2/);
    await refused(await sign({ ...goodClaims(), events: {} }), 'invalid_request', /exactly one event per SET, got 0/);
    const { events: _none, ...noEvents } = goodClaims();
    await refused(await sign(noEvents), 'invalid_request', /events missing/);
  });

  it('refuses a missing or malformed sub_id', async () => {
    const { sub_id: _gone, ...noSubject } = goodClaims();
    await refused(await sign(noSubject), 'invalid_request', /sub_id missing/);
    await refused(
      await sign({ ...goodClaims(), sub_id: { format: 'email' } }),
      'invalid_request',
      /subject email lacks email/,
    );
    await refused(
      await sign({ ...goodClaims(), sub_id: { format: 'complex', printer: { format: 'opaque', id: 'p' } } }),
      'invalid_request',
      /unknown complex member printer/,
    );
    await refused(await sign({ ...goodClaims(), sub_id: { format: 'complex' } }), 'invalid_request', /empty complex/);
  });

  it('refuses a bad signature, an unknown kid, a key or algorithm the profile does not allow', async () => {
    const jwt = await sign(goodClaims());
    const [h, p, s] = jwt.split('.') as [string, string, string];
    const flipped = Buffer.from(s, 'base64url');
    flipped[0] = (flipped[0] ?? 0) ^ 0xff;
    await refused(`${h}.${p}.${flipped.toString('base64url')}`, 'invalid_key', /signature/);
    // Signed by a key the transmitter does not publish, under a published kid.
    const stranger = await generateKeyPair('RS256', { modulusLength: 2048 });
    await refused(await sign(goodClaims(), {}, stranger.privateKey), 'invalid_key', /signature/);
    await refused(await sign(goodClaims(), { kid: 'nobody' }), 'invalid_key', /signature/);
    await refused(await sign(goodClaims(), { kid: undefined }), 'invalid_key', /no kid/);
    // ES256 is refused unless the test allows it (the interop profile is RS256) …
    const es = await sign(goodClaims(), { alg: 'ES256', kid: 'ec-1' }, ecKey);
    await refused(es, 'invalid_key', /alg ES256 not accepted/);
    // … and accepted when it does.
    const lenient = new ConformanceReceiver({ issuer: ISSUER, audience: AUDIENCE, jwksUri, algorithms: ['ES256'] });
    assert.equal((await lenient.check(es)).type, `${CAEP}session-revoked`);
  });

  it('refuses the wrong issuer or audience, a missing jti, a non-integer or future iat, a non-string txn', async () => {
    await refused(await sign({ ...goodClaims(), iss: 'https://evil.example' }), 'invalid_issuer', /iss/);
    await refused(await sign({ ...goodClaims(), aud: 'https://someone-else.example' }), 'invalid_audience', /aud/);
    const { jti: _jti, ...noJti } = goodClaims();
    await refused(await sign(noJti), 'invalid_request', /jti missing/);
    await refused(await sign({ ...goodClaims(), iat: 1.5 }), 'invalid_request', /iat must be an integer/);
    const future = Math.floor(Date.now() / 1000) + 3600;
    await refused(await sign({ ...goodClaims(), iat: future }), 'invalid_request', /iat in the future/);
    await refused(await sign({ ...goodClaims(), txn: 42 }), 'invalid_request', /txn must be a string/);
  });

  it('refuses a replayed jti', async () => {
    const r = receiver();
    const jwt = await sign(goodClaims());
    await r.check(jwt);
    await refused(jwt, 'invalid_request', /replayed/, r);
  });

  it('refuses CAEP events without the members the interop profile requires', async () => {
    const withEvent = (name: string, body: Record<string, unknown>) => ({
      ...goodClaims(),
      events: { [`${CAEP}${name}`]: { event_timestamp: Math.floor(Date.now() / 1000), ...body } },
    });
    await refused(await sign(withEvent('session-revoked', {})), 'invalid_request', /without reason_admin/);
    await refused(
      await sign(withEvent('assurance-level-change', { namespace: 'NIST-AAL', current_level: 'aal9' })),
      'invalid_request',
      /assurance-level-change/,
    );
    await refused(
      await sign(withEvent('credential-change', { credential_type: 'fido2-roaming', change_type: 'moved' })),
      'invalid_request',
      /change_type/,
    );
    await refused(
      await sign(withEvent('device-compliance-change', { previous_status: 'compliant', current_status: 'fine' })),
      'invalid_request',
      /current_status/,
    );
    await refused(await sign(withEvent('session-presented', { amr: 'hwk' })), 'invalid_request', /amr/);
    await refused(await sign(withEvent('no-such-event', {})), 'invalid_request', /unknown CAEP event/);
    await refused(
      await sign(withEvent('session-established', { event_timestamp: 'yesterday' })),
      'invalid_request',
      /event_timestamp/,
    );
    await refused(
      await sign(withEvent('session-established', { initiating_entity: 'robot' })),
      'invalid_request',
      /initiating_entity/,
    );
  });

  it('as a push endpoint (RFC 8935): 400 with {err, description} for a refused SET or request, 202 for a good one', async () => {
    const r = await new ConformanceReceiver({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri,
      expectAuthorization: 'Bearer s3cret',
    }).listen();
    try {
      const push = (body: string, headers: Record<string, string> = {}) =>
        fetch(r.url, {
          method: 'POST',
          headers: { 'content-type': 'application/secevent+jwt', authorization: 'Bearer s3cret', ...headers },
          body,
        });
      const bad = await push(await sign({ ...goodClaims(), sub: 'op-1' }));
      assert.equal(bad.status, 400);
      assert.deepEqual(await bad.json(), { err: 'invalid_request', description: 'sub is forbidden' });
      const wrongType = await push(await sign(goodClaims()), { 'content-type': 'application/jwt' });
      assert.equal(wrongType.status, 400);
      const noAuth = await push(await sign(goodClaims()), { authorization: 'Bearer other' });
      assert.equal(noAuth.status, 400);
      assert.equal(((await noAuth.json()) as { err: string }).err, 'authentication_failed');
      assert.equal(r.accepted.length, 0);
      assert.equal(r.rejected.length, 3);
      const good = await push(await sign(goodClaims()));
      assert.equal(good.status, 202);
      assert.equal(r.accepted.length, 1);
    } finally {
      await r.close();
    }
  });
});
