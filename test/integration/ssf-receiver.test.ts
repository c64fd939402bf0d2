/**
 * Baton as a Shared Signals receiver (issue 13): an upstream transmitter written here (real RSA
 * keys via jose, a real HTTP server publishing its ssf-configuration and JWKS, real pushes to
 * Baton's RFC 8935 endpoint). Every refusal is checked as the transmitter sees it (status, RFC 8935
 * `err`, Baton's code); every accepted SET as the operator's consoles and the audit trail see it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
const AUDIENCE = 'https://baton.bank.example/ssf';

/** The upstream identity provider: its keys, its metadata, its stream endpoint (records what Baton asked). */
class Upstream {
  server!: Server;
  url = '';
  key!: CryptoKey;
  jwk!: JWK;
  streamRequests: Json[] = [];
  constructor(readonly kid = 'idp-key-1') {}

  get issuer(): string {
    return `${this.url}/`;
  }

  async start(): Promise<void> {
    const pair = await generateKeyPair('RS256', { modulusLength: 2048 });
    this.key = pair.privateKey;
    this.jwk = { ...(await exportJWK(pair.publicKey)), kid: this.kid, alg: 'RS256', use: 'sig' };
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const json = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        if (req.url === '/.well-known/ssf-configuration') {
          return json(200, {
            spec_version: '1_0',
            issuer: this.issuer,
            jwks_uri: `${this.url}/jwks.json`,
            delivery_methods_supported: ['urn:ietf:rfc:8935'],
            configuration_endpoint: `${this.url}/ssf/streams`,
          });
        }
        if (req.url === '/jwks.json') return json(200, { keys: [this.jwk] });
        if (req.url === '/ssf/streams' && req.method === 'POST') {
          if (req.headers.authorization !== 'Bearer upstream-issued-token') return json(401, {});
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json;
          this.streamRequests.push(body);
          return json(201, { stream_id: 'stream-1', iss: this.issuer, aud: AUDIENCE, ...body });
        }
        json(404, {});
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://localhost:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** A SET as the transmitter signs it; `overrides` change claims, `header` the JWS header, `key` the signer. */
  async set(
    type: string,
    subject: Json,
    options: { claims?: Json; header?: Json; key?: CryptoKey; event?: Json } = {},
  ): Promise<{ jwt: string; jti: string }> {
    const jti = randomUUID();
    const payload = {
      iss: this.issuer,
      jti,
      iat: Math.floor(Date.now() / 1000),
      aud: AUDIENCE,
      sub_id: subject,
      events: { [type]: { event_timestamp: Math.floor(Date.now() / 1000), ...options.event } },
      ...options.claims,
    };
    const jwt = await new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', typ: 'secevent+jwt', kid: this.kid, ...options.header })
      .sign(options.key ?? this.key);
    return { jwt, jti };
  }
}

async function push(
  url: string,
  token: string | undefined,
  body: string,
  contentType = 'application/secevent+jwt',
): Promise<{ status: number; body: Json }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': contentType,
      accept: 'application/json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body,
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as Json) };
}

function assertRefused(result: { status: number; body: Json }, status: number, err: string, code: string): void {
  assert.equal(result.status, status, JSON.stringify(result.body));
  assert.equal(result.body.err, err, JSON.stringify(result.body));
  assert.equal(result.body.error.code, code);
  assert.match(result.body.description, new RegExp(code));
}

describe('Shared Signals receiver: SETs pushed by an upstream transmitter', () => {
  let t: TestBackend;
  const upstream = new Upstream();
  let endpoint = '';
  let pushToken = '';
  let transmitterId = '';

  before(async () => {
    await upstream.start();
    t = await startTestBackend();
    const registered = (await t.admin.ok('POST', '/v1/admin/ssf/transmitters', {
      name: 'Workforce IdP',
      issuer: upstream.issuer,
      audience: AUDIENCE,
      configurationUrl: `${upstream.url}/.well-known/ssf-configuration`,
    })) as Json;
    transmitterId = registered.transmitter.id;
    endpoint = registered.pushEndpoint;
    pushToken = registered.pushToken;
    assert.equal(registered.transmitter.jwksUri, `${upstream.url}/jwks.json`);
  });
  after(async () => {
    await t.stop();
    await upstream.stop();
  });

  /** An operator with a linked email identity. */
  async function operatorWithEmail(email: string, console: TestConsole) {
    const enrolled = await enrolOperator(t.admin, console, { displayName: email });
    await t.admin.ok('POST', `/v1/admin/operators/${enrolled.operatorId}/identities`, { format: 'email', email });
    return enrolled;
  }

  async function ssfEvents(type: 'ssf-set-received' | 'ssf-set-refused'): Promise<Json[]> {
    return ((await t.admin.ok('GET', `/v1/admin/events?type=${type}&limit=1000`)) as Json).events;
  }

  it('account-disabled ends the operator’s sessions on two connected consoles, and both acknowledge', async () => {
    const a = await TestConsole.enrol(t.url, t.admin);
    const b = await TestConsole.enrol(t.url, t.admin, 'contact-centre');
    const { operatorId, authenticator } = await operatorWithEmail('Dana.Leaver@bank.example', a);
    const onA = ((await signIn(a, authenticator)).body as Json).session;
    const onB = ((await signIn(b, authenticator)).body as Json).session;
    const [sa, sb] = await Promise.all([a.connect(), b.connect()]);
    await Promise.all([sa.next('welcome'), sb.next('welcome')]);

    const { jwt, jti } = await upstream.set(
      `${RISC}account-disabled`,
      { format: 'email', email: 'dana.leaver@bank.example' },
      {
        event: { reason: 'hijacking' },
      },
    );
    const accepted = await push(endpoint, pushToken, jwt);
    assert.equal(accepted.status, 202);

    const epochs: number[] = [];
    for (const socket of [sa, sb]) {
      const m = await socket.next('revocation', (r) =>
        r.items.some((i) => i.kind === 'operator' && i.targetId === operatorId),
      );
      assert.match(m.items[0]?.reason ?? '', /account-disabled/);
      socket.send({ type: 'ack', of: 'revocation', epoch: m.epoch });
      epochs.push(m.epoch);
    }
    await a.roundTrip(sa);
    await b.roundTrip(sb);
    assert.equal(epochs[0], epochs[1]);
    const deliveries = (await t.admin.ok('GET', `/v1/admin/revocations/${epochs[0]}/deliveries`)) as Json;
    const acked = (deliveries.deliveries as Json[])
      .filter((d) => d.ackedAt !== null && d.ackedAt !== undefined)
      .map((d) => d.consoleId);
    assert.ok(acked.includes(a.id) && acked.includes(b.id), JSON.stringify(deliveries));

    // Both sessions are over; the operator cannot sign in again.
    for (const id of [onA.id, onB.id]) {
      const session = (await t.admin.ok('GET', `/v1/admin/sessions?state=revoked&limit=1000`)) as Json;
      assert.ok((session.sessions as Json[]).some((s) => s.id === id));
    }
    assert.equal((await signIn(a, authenticator)).body.error.code, 'OPERATOR_REVOKED');

    // The audit trail says why: the SET's jti and issuer, and the revocation made by this transmitter.
    const received = (await ssfEvents('ssf-set-received')).find((e) => e.detail.jti === jti);
    assert.equal(received.detail.iss, upstream.issuer);
    assert.equal(received.detail.action, 'operator-revoked');
    assert.equal(received.subject.operator, operatorId);
    assert.equal(received.detail.epochs, String(epochs[0]));
    const revoked = (await t.admin.ok('GET', `/v1/admin/events?operator=${operatorId}&type=operator-revoked`)) as Json;
    assert.equal(revoked.events[0].detail.actor, `ssf:${transmitterId}`);
    await Promise.all([sa.close(), sb.close()]);
  });

  it('refuses a forged signature (invalid_key) and acts on nothing', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const { operatorId } = await operatorWithEmail('forged.target@bank.example', console);
    const forger = await generateKeyPair('RS256', { modulusLength: 2048 });
    const { jwt } = await upstream.set(
      `${RISC}account-disabled`,
      { format: 'email', email: 'forged.target@bank.example' },
      {
        key: forger.privateKey,
      },
    );
    assertRefused(await push(endpoint, pushToken, jwt), 400, 'invalid_key', 'SSF_SET_SIGNATURE_INVALID');
    // alg "none" (an unsigned SET) is no better.
    const [h, p] = jwt.split('.');
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'secevent+jwt' })).toString('base64url')}.${p ?? h}.`;
    assert.equal((await push(endpoint, pushToken, unsigned)).body.error.code, 'SSF_SET_MALFORMED');
    const operator = (await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json;
    assert.equal(operator.operator.revokedAt, null);
  });

  it('refuses a wrong audience (invalid_audience) and a wrong issuer (invalid_issuer), both signed by the transmitter', async () => {
    const subject = { format: 'email', email: 'nobody@bank.example' };
    const wrongAud = await upstream.set(`${CAEP}session-revoked`, subject, {
      claims: { aud: 'https://someone-else.example' },
    });
    assertRefused(await push(endpoint, pushToken, wrongAud.jwt), 400, 'invalid_audience', 'SSF_SET_AUDIENCE_INVALID');
    const wrongIss = await upstream.set(`${CAEP}session-revoked`, subject, {
      claims: { iss: 'https://evil.example/' },
    });
    assertRefused(await push(endpoint, pushToken, wrongIss.jwt), 400, 'invalid_issuer', 'SSF_SET_ISSUER_INVALID');
    // Signed, so recorded as events with the jti (the audit trail shows the attempt).
    const refused = await ssfEvents('ssf-set-refused');
    assert.ok(refused.some((e) => e.detail.jti === wrongAud.jti && e.detail.code === 'SSF_SET_AUDIENCE_INVALID'));
    assert.ok(refused.some((e) => e.detail.jti === wrongIss.jti && e.detail.err === 'invalid_issuer'));
  });

  it('refuses a replayed jti, a stale iat, a wrong typ, an oversized body and a push without its token', async () => {
    const subject = { format: 'opaque', id: 'never-linked' };
    const once = await upstream.set(`${RISC}sessions-revoked`, subject);
    assert.equal((await push(endpoint, pushToken, once.jwt)).status, 202);
    assertRefused(await push(endpoint, pushToken, once.jwt), 400, 'invalid_request', 'SSF_SET_REPLAYED');

    const stale = await upstream.set(`${RISC}sessions-revoked`, subject, {
      claims: { iat: Math.floor(Date.now() / 1000) - 7200 },
    });
    assertRefused(await push(endpoint, pushToken, stale.jwt), 400, 'invalid_request', 'SSF_SET_STALE');
    const future = await upstream.set(`${RISC}sessions-revoked`, subject, {
      claims: { iat: Math.floor(Date.now() / 1000) + 3600 },
    });
    assertRefused(await push(endpoint, pushToken, future.jwt), 400, 'invalid_request', 'SSF_SET_STALE');

    const plainJwt = await upstream.set(`${RISC}sessions-revoked`, subject, { header: { typ: 'JWT' } });
    assertRefused(await push(endpoint, pushToken, plainJwt.jwt), 400, 'invalid_request', 'SSF_SET_TYPE_INVALID');

    const big = await upstream.set(`${RISC}sessions-revoked`, subject, { event: { padding: 'x'.repeat(20_000) } });
    assertRefused(await push(endpoint, pushToken, big.jwt), 400, 'invalid_request', 'SSF_SET_TOO_LARGE');

    const fresh = await upstream.set(`${RISC}sessions-revoked`, subject);
    assertRefused(await push(endpoint, undefined, fresh.jwt), 401, 'authentication_failed', 'SSF_PUSH_AUTH_FAILED');
    assertRefused(await push(endpoint, 'bssf_wrong', fresh.jwt), 401, 'authentication_failed', 'SSF_PUSH_AUTH_FAILED');
    assertRefused(
      await push(endpoint, pushToken, fresh.jwt, 'application/json'),
      400,
      'invalid_request',
      'SSF_SET_MALFORMED',
    );
    const twoEvents = await upstream.set(`${RISC}sessions-revoked`, subject, {
      claims: { events: { [`${RISC}sessions-revoked`]: {}, [`${RISC}account-disabled`]: {} } },
    });
    assertRefused(await push(endpoint, pushToken, twoEvents.jwt), 400, 'invalid_request', 'SSF_SET_EVENT_INVALID');
    const badEvent = await upstream.set(`${CAEP}credential-change`, subject, { event: { change_type: 'explode' } });
    assertRefused(await push(endpoint, pushToken, badEvent.jwt), 400, 'invalid_request', 'SSF_SET_EVENT_INVALID');
    // The refused fresh SET was not burnt: sent properly, it is accepted.
    assert.equal((await push(endpoint, pushToken, fresh.jwt)).status, 202);
    assertRefused(
      await push(`${t.url}/ssf/receiver/ssft_nope/events`, pushToken, fresh.jwt),
      403,
      'access_denied',
      'SSF_TRANSMITTER_UNKNOWN',
    );

    // The admin sees the refusals by reason.
    const view = ((await t.admin.ok('GET', `/v1/admin/ssf/transmitters/${transmitterId}`)) as Json).transmitter;
    const codes = new Map((view.rejections as Json[]).map((r) => [r.code, r.count]));
    for (const code of [
      'SSF_SET_REPLAYED',
      'SSF_SET_STALE',
      'SSF_SET_TOO_LARGE',
      'SSF_PUSH_AUTH_FAILED',
      'SSF_SET_TYPE_INVALID',
    ]) {
      assert.ok((codes.get(code) ?? 0) >= 1, `${code} counted: ${JSON.stringify(view.rejections)}`);
    }
    assert.equal(codes.get('SSF_SET_STALE'), 2);
  });

  it('accepts and records an unknown subject and an unknown event type (202, nothing revoked)', async () => {
    const unknownSubject = await upstream.set(`${RISC}account-disabled`, {
      format: 'email',
      email: 'stranger@bank.example',
    });
    assert.equal((await push(endpoint, pushToken, unknownSubject.jwt)).status, 202);
    const console = await TestConsole.enrol(t.url, t.admin);
    const { operatorId } = await operatorWithEmail('kept@bank.example', console);
    const unknownType = await upstream.set('https://schemas.example.com/event-type/mood-changed', {
      format: 'email',
      email: 'kept@bank.example',
    });
    assert.equal((await push(endpoint, pushToken, unknownType.jwt)).status, 202);
    const received = await ssfEvents('ssf-set-received');
    const bySubject = received.find((e) => e.detail.jti === unknownSubject.jti);
    assert.equal(bySubject.detail.action, 'ignored-unknown-subject');
    assert.equal(bySubject.outcome, 'info');
    const byType = received.find((e) => e.detail.jti === unknownType.jti);
    assert.equal(byType.detail.action, 'ignored-unknown-event');
    assert.equal(byType.detail.event, 'https://schemas.example.com/event-type/mood-changed');
    assert.equal(((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator.revokedAt, null);
  });

  it('maps iss_sub and complex subjects; CAEP session-revoked ends sessions but keeps the operator', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const { operatorId, authenticator } = await enrolOperator(t.admin, console, { displayName: 'Sam Session' });
    await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/identities`, {
      format: 'iss_sub',
      iss: upstream.issuer,
      sub: '00u1abc',
    });
    const taken = await t.admin.request('POST', `/v1/admin/operators/${operatorId}/identities`, {
      format: 'iss_sub',
      iss: upstream.issuer,
      sub: '00u1abc',
    });
    assert.equal(taken.status, 409);
    assert.equal(taken.body.error.code, 'SSF_IDENTITY_TAKEN');
    const session = ((await signIn(console, authenticator)).body as Json).session;
    const { jwt, jti } = await upstream.set(
      `${CAEP}session-revoked`,
      {
        format: 'complex',
        user: { format: 'iss_sub', iss: upstream.issuer, sub: '00u1abc' },
      },
      { event: { initiating_entity: 'policy', reason_admin: { en: 'Landspeed policy violation' } } },
    );
    assert.equal((await push(endpoint, pushToken, jwt)).status, 202);
    const events = (await t.admin.ok(
      'GET',
      `/v1/admin/events?session=${session.id as string}&type=session-revoked`,
    )) as Json;
    assert.match(events.events[0].detail.reason_admin, /Landspeed policy violation/);
    const received = (await ssfEvents('ssf-set-received')).find((e) => e.detail.jti === jti);
    assert.equal(received.detail.action, 'sessions-revoked');
    assert.equal(((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator.revokedAt, null);
    // Unlinked, the subject is unknown again.
    const { identities } = (await t.admin.ok('GET', `/v1/admin/operators/${operatorId}/identities`)) as Json;
    await t.admin.ok('DELETE', `/v1/admin/operators/${operatorId}/identities/${identities[0].id as string}`);
    const again = await upstream.set(`${RISC}account-disabled`, {
      format: 'iss_sub',
      iss: upstream.issuer,
      sub: '00u1abc',
    });
    assert.equal((await push(endpoint, pushToken, again.jwt)).status, 202);
    assert.equal(((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator.revokedAt, null);
  });

  it('credential-compromise revokes the operator’s passkeys', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    const { operatorId, credentialId, authenticator } = await operatorWithEmail('phished@bank.example', console);
    const { jwt } = await upstream.set(`${RISC}credential-compromise`, {
      format: 'email',
      email: 'phished@bank.example',
    });
    assert.equal((await push(endpoint, pushToken, jwt)).status, 202);
    const detail = (await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json;
    assert.notEqual((detail.credentials as Json[]).find((c) => c.id === credentialId).revokedAt, null);
    assert.equal((await signIn(console, authenticator)).status >= 400, true);
  });

  it('creates a push stream at the upstream, which then delivers through it; a disabled transmitter is refused', async () => {
    const { stream, transmitter } = (await t.admin.ok('POST', `/v1/admin/ssf/transmitters/${transmitterId}/stream`, {
      accessToken: 'upstream-issued-token',
    })) as Json;
    assert.equal(stream.stream_id, 'stream-1');
    assert.equal(transmitter.streamId, 'stream-1');
    const asked = upstream.streamRequests.at(-1);
    assert.equal(asked.delivery.method, 'urn:ietf:rfc:8935');
    assert.equal(asked.delivery.endpoint_url, endpoint);
    assert.ok((asked.events_requested as string[]).includes(`${RISC}account-disabled`));
    // The upstream pushes with the authorization header it was given; the old token no longer works.
    const newToken = (asked.delivery.authorization_header as string).replace(/^Bearer /, '');
    const set = await upstream.set(`${RISC}sessions-revoked`, { format: 'opaque', id: 'x' });
    assertRefused(await push(endpoint, pushToken, set.jwt), 401, 'authentication_failed', 'SSF_PUSH_AUTH_FAILED');
    assert.equal((await push(endpoint, newToken, set.jwt)).status, 202);
    pushToken = newToken;

    await t.admin.ok('DELETE', `/v1/admin/ssf/transmitters/${transmitterId}`);
    const after = await upstream.set(`${RISC}sessions-revoked`, { format: 'opaque', id: 'x' });
    assertRefused(await push(endpoint, pushToken, after.jwt), 403, 'access_denied', 'SSF_TRANSMITTER_UNKNOWN');
  });

  it('verifies with a pinned JWKS for an offline site (no fetch)', async () => {
    const offline = new Upstream('offline-key');
    await offline.start();
    const jwks = { keys: [offline.jwk] };
    await offline.stop(); // nothing to fetch from: the pinned keys are all Baton has
    const registered = (await t.admin.ok('POST', '/v1/admin/ssf/transmitters', {
      issuer: offline.issuer,
      audience: AUDIENCE,
      jwks,
    })) as Json;
    assert.equal(registered.transmitter.pinnedJwks, true);
    const good = await offline.set(`${RISC}sessions-revoked`, { format: 'opaque', id: 'someone' });
    assert.equal((await push(registered.pushEndpoint, registered.pushToken, good.jwt)).status, 202);
    const forged = await offline.set(
      `${RISC}sessions-revoked`,
      { format: 'opaque', id: 'someone' },
      {
        key: (await generateKeyPair('RS256', { modulusLength: 2048 })).privateKey,
      },
    );
    assertRefused(
      await push(registered.pushEndpoint, registered.pushToken, forged.jwt),
      400,
      'invalid_key',
      'SSF_SET_SIGNATURE_INVALID',
    );
    // Registration refuses two key sources at once.
    const both = await t.admin.request('POST', '/v1/admin/ssf/transmitters', {
      issuer: offline.issuer,
      audience: AUDIENCE,
      jwks,
      jwksUri: 'https://idp.example/jwks',
    });
    assert.equal(both.status, 400);
  });
});
