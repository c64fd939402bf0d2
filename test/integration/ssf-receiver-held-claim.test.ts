/**
 * Sources in (Baton as a Shared Signals receiver): held SETs claimed before they are applied, and an upstream's
 * endpoints pinned to its configuration URL's origin, on the real backend, on the engine the suite runs on (SQLite,
 * or PostgreSQL with BATON_TEST_DATABASE=postgres), against an upstream written here (real keys, a real HTTP server).
 *
 * - A disable that lands while a resume is applying (ordered by hooking the first revocation of the resume, no
 *   sleeps): the SET being applied was claimed before it, so it is not listed as dropped; the SETs the disable lists
 *   as dropped are never applied (their operators keep their accounts).
 * - Two resumes at once (the second runs inside the first's first revocation): each held SET is applied once.
 * - A resume that stops partway (its first revocation fails): the SET is held again, the source is enabled and still
 *   holds; a new SET acts at once; applying the held SETs again (the same status request) applies the rest.
 * - An upstream whose configuration names a verification, status or configuration endpoint on another origin is
 *   refused (SSF_UPSTREAM_INVALID) and nothing is sent there; a redirect from an endpoint is not followed.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import type { RevocationHub } from '../../backend/services/revocation-hub.js';
import { assertError, startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator } from '../helpers/operator-flow.js';

const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
const AUDIENCE = 'https://baton.bank.example/ssf';
const ACCESS_TOKEN = 'upstream-issued-token';

/** An upstream with SSF stream management; its configuration can name endpoints elsewhere, or redirect. */
class Upstream {
  server!: Server;
  /** Its origin as registered (localhost); `other` is the same server under another origin (127.0.0.1). */
  url = '';
  other = '';
  key!: CryptoKey;
  jwk!: JWK;
  delivery: { endpoint_url: string; authorization_header: string } | undefined;
  /** Every request it got: method, host and path. */
  requests: string[] = [];
  /** `foreign`: the configuration names its management endpoints on the other origin; `redirect`: they answer 307 to it. */
  mode: 'ok' | 'foreign' | 'redirect' = 'ok';

  get issuer(): string {
    return `${this.url}/`;
  }

  async start(): Promise<void> {
    const pair = await generateKeyPair('RS256', { modulusLength: 2048 });
    this.key = pair.privateKey;
    this.jwk = { ...(await exportJWK(pair.publicKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' };
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests.push(`${req.method} ${req.headers.host} ${req.url}`);
        const json = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
          res.writeHead(status, body === undefined ? headers : { ...headers, 'content-type': 'application/json' });
          res.end(body === undefined ? undefined : JSON.stringify(body));
        };
        if (req.url === '/.well-known/ssf-configuration') {
          const at = this.mode === 'foreign' ? this.other : this.url;
          return json(200, {
            spec_version: '1_0',
            issuer: this.issuer,
            jwks_uri: `${this.url}/jwks.json`,
            delivery_methods_supported: ['urn:ietf:rfc:8935'],
            configuration_endpoint: `${at}/ssf/streams`,
            status_endpoint: `${at}/ssf/status`,
            verification_endpoint: `${at}/ssf/verify`,
          });
        }
        if (req.url === '/jwks.json') return json(200, { keys: [this.jwk] });
        if (this.mode === 'redirect' && req.url?.startsWith('/ssf/')) {
          return json(307, undefined, { location: `${this.other}/elsewhere${req.url}` });
        }
        if (req.headers.authorization !== `Bearer ${ACCESS_TOKEN}`) return json(401, { error: 'invalid_token' });
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Json;
        if (req.url === '/ssf/streams' && req.method === 'POST') {
          this.delivery = body.delivery as Upstream['delivery'];
          return json(201, { stream_id: 'stream-1', iss: this.issuer, aud: AUDIENCE, delivery: this.delivery });
        }
        if (req.url === '/ssf/status' && req.method === 'POST') {
          return json(200, { stream_id: body.stream_id, status: body.status });
        }
        if (req.url === '/ssf/verify' && req.method === 'POST') return json(204);
        json(404, {});
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const port = (this.server.address() as AddressInfo).port;
    this.url = `http://localhost:${port}`;
    this.other = `http://127.0.0.1:${port}`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  async set(type: string, email: string): Promise<{ jwt: string; jti: string }> {
    const jti = randomUUID();
    const jwt = await new SignJWT({
      iss: this.issuer,
      jti,
      iat: Math.floor(Date.now() / 1000),
      aud: AUDIENCE,
      sub_id: { format: 'email', email },
      events: { [type]: {} },
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'secevent+jwt', kid: 'idp-1' })
      .sign(this.key);
    return { jwt, jti };
  }

  async push(jwt: string): Promise<number> {
    assert.ok(this.delivery, 'a stream was created');
    const response = await fetch(this.delivery.endpoint_url, {
      method: 'POST',
      headers: { 'content-type': 'application/secevent+jwt', authorization: this.delivery.authorization_header },
      body: jwt,
    });
    await response.text();
    return response.status;
  }
}

describe('Shared Signals sources in: held SETs claimed once, upstream endpoints pinned', () => {
  let t: TestBackend;
  let console: TestConsole;
  const upstream = new Upstream();
  let id = '';

  before(async () => {
    await upstream.start();
    t = await startTestBackend();
    console = await TestConsole.enrol(t.url, t.admin);
    const registered = (await t.admin.ok('POST', '/v1/admin/ssf/transmitters', {
      name: 'Workforce IdP',
      issuer: upstream.issuer,
      audience: AUDIENCE,
      configurationUrl: `${upstream.url}/.well-known/ssf-configuration`,
    })) as Json;
    id = registered.transmitter.id;
    await t.admin.ok('POST', `/v1/admin/ssf/transmitters/${id}/stream`, { accessToken: ACCESS_TOKEN });
  });
  after(async () => {
    await t.stop();
    await upstream.stop();
  });

  const source = async (): Promise<Json> =>
    ((await t.admin.ok('GET', `/v1/admin/ssf/transmitters/${id}`)) as Json).transmitter;
  const setStatus = async (body: Json): Promise<Json> => {
    const answer = await t.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/status`, body);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body;
  };
  /** The applications of a held SET (its `ssf-set-received` events other than the hold). */
  const applications = async (jti: string): Promise<Json[]> =>
    (((await t.admin.ok('GET', `/v1/admin/events?type=ssf-set-received&limit=1000`)) as Json).events as Json[]).filter(
      (e) => e.detail.jti === jti && e.detail.action !== 'held',
    );
  const revokedAt = async (operatorId: string): Promise<unknown> =>
    (((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator as Json).revokedAt;

  type Held = { operatorId: string; jti: string };
  /** The `n`th of the SETs held (asserted there). */
  const nth = (held: Held[], n: number): Held => {
    const h = held[n];
    assert.ok(h);
    return h;
  };
  /** Operators with linked email identities, and an account-disabled SET about each held by the paused source. */
  async function heldAbout(...names: string[]): Promise<Held[]> {
    const out: Held[] = [];
    await setStatus({ status: 'paused', reason: 'held for the test' });
    for (const name of names) {
      const email = `${name}.${randomUUID().slice(0, 8)}@bank.example`;
      const { operatorId } = await enrolOperator(t.admin, console, { displayName: name });
      await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/identities`, { format: 'email', email });
      const set = await upstream.set(`${RISC}account-disabled`, email);
      assert.equal(await upstream.push(set.jwt), 202);
      out.push({ operatorId, jti: set.jti });
    }
    assert.equal((await source()).held, names.length);
    return out;
  }

  /** Runs `during` once, inside the next revocation (before it), as a request landing while a resume applies. */
  function duringFirstRevocation(during: () => Promise<void>): { restore: () => void } {
    const hub = t.backend.revocations as { revoke: RevocationHub['revoke'] };
    const original = hub.revoke;
    let first = true;
    hub.revoke = async function (this: RevocationHub, ...args: Parameters<RevocationHub['revoke']>) {
      if (first) {
        first = false;
        await during();
      }
      return original.apply(this, args);
    };
    return { restore: () => (hub.revoke = original) };
  }

  it('a disable that lands while a resume applies a held SET: what it lists as dropped is never applied', async () => {
    const three = await heldAbout('ann', 'bob', 'cy');
    const [ann, bob, cy] = [nth(three, 0), nth(three, 1), nth(three, 2)];
    let disabled: Json = null;
    const hook = duringFirstRevocation(async () => {
      disabled = await setStatus({ status: 'disabled', reason: 'compromised IdP' });
    });
    try {
      const resumed = await setStatus({ status: 'enabled' });
      assert.equal(resumed.applied, 1);
      assert.equal(resumed.remaining, 0);
    } finally {
      hook.restore();
    }
    assert.ok(disabled);
    // Ann's SET was claimed (taken from the held ones) before the disable: applied, and not listed as dropped.
    assert.notEqual(await revokedAt(ann.operatorId), null);
    assert.equal((await applications(ann.jti)).length, 1);
    assert.equal(disabled.droppedSets, 2);
    const event = (
      ((await t.admin.ok('GET', `/v1/admin/events?type=admin-action&limit=1000`)) as Json).events as Json[]
    ).find((e) => (e.reasons as string[]).includes('ssf-transmitter-disabled'));
    assert.deepEqual((event?.detail.droppedJtis as string).split(' ').sort(), [bob.jti, cy.jti].sort());
    // Dropped: never applied.
    for (const dropped of [bob, cy]) {
      assert.equal(await revokedAt(dropped.operatorId), null);
      assert.deepEqual(await applications(dropped.jti), []);
    }
    assert.equal((await source()).status, 'disabled');
    await setStatus({ status: 'enabled' });
  });

  it('two resumes at once apply each held SET exactly once', async () => {
    const held = await heldAbout('dee', 'eve', 'fay');
    let second: Json = null;
    const hook = duringFirstRevocation(async () => {
      second = await setStatus({ status: 'enabled' });
    });
    let first: Json;
    try {
      first = await setStatus({ status: 'enabled' });
    } finally {
      hook.restore();
    }
    assert.ok(second);
    // The second resume applied what the first had not claimed yet; the first, its one SET (the rest gone).
    assert.equal(first.applied + second.applied, 3);
    assert.equal(first.remaining, 0);
    for (const h of held) {
      assert.ok(h);
      const applied = await applications(h.jti);
      assert.equal(applied.length, 1, `${h.jti} applied once`);
      assert.equal(applied[0].detail.action, 'operator-revoked');
      assert.notEqual(await revokedAt(h.operatorId), null);
    }
    assert.equal((await source()).held, 0);
  });

  it('a resume that stops partway keeps what it could not apply; a new SET acts at once; applying again goes on', async () => {
    const two = await heldAbout('gus', 'hal');
    const [gus, hal] = [nth(two, 0), nth(two, 1)];
    const hook = duringFirstRevocation(() => Promise.reject(new Error('the database went away')));
    let stopped: Json;
    try {
      stopped = await setStatus({ status: 'enabled' });
    } finally {
      hook.restore();
    }
    // Nothing lost: the SET whose revocation failed is held again, in its place, and the run stopped there.
    assert.equal(stopped.applied, 0);
    assert.equal(stopped.remaining, 2);
    assert.equal(stopped.transmitter.status, 'enabled');
    assert.equal(stopped.transmitter.held, 2);
    assert.equal(await revokedAt(gus.operatorId), null);

    // Enabled while older SETs are held: a new SET acts as it arrives (a stuck one delays no revocation).
    const ivy = await (async () => {
      const email = `ivy.${randomUUID().slice(0, 8)}@bank.example`;
      const { operatorId } = await enrolOperator(t.admin, console, { displayName: 'ivy' });
      await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/identities`, { format: 'email', email });
      const set = await upstream.set(`${RISC}account-disabled`, email);
      assert.equal(await upstream.push(set.jwt), 202);
      return { operatorId, jti: set.jti };
    })();
    assert.notEqual(await revokedAt(ivy.operatorId), null);
    assert.equal((await source()).held, 2);

    // The same request again (the console's "Apply held SETs") applies the rest, oldest first, once each.
    const again = await setStatus({ status: 'enabled' });
    assert.equal(again.changed, false);
    assert.equal(again.applied, 2);
    assert.equal(again.remaining, 0);
    for (const h of [gus, hal]) {
      assert.notEqual(await revokedAt(h.operatorId), null);
      assert.equal((await applications(h.jti)).length, 1);
    }
    const [gusAt, halAt] = [(await applications(gus.jti))[0], (await applications(hal.jti))[0]];
    assert.ok((gusAt?.cursor as number) < (halAt?.cursor as number), 'oldest first');
  });

  it('refuses an endpoint on another origin than the configuration URL, and sends nothing there', async () => {
    upstream.mode = 'foreign';
    try {
      const before = upstream.requests.length;
      assertError(
        await t.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/verify`, { accessToken: ACCESS_TOKEN }),
        502,
        'SSF_UPSTREAM_INVALID',
      );
      assertError(
        await t.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/stream`, { accessToken: ACCESS_TOKEN }),
        502,
        'SSF_UPSTREAM_INVALID',
      );
      const paused = await setStatus({ status: 'paused', accessToken: ACCESS_TOKEN });
      assert.equal(paused.transmitter.status, 'paused', 'the local change is made');
      assert.equal(paused.upstream.ok, false);
      assert.match(paused.upstream.error, /SSF_UPSTREAM_INVALID/);
      const sent = upstream.requests.slice(before);
      assert.ok(sent.length > 0, 'the configuration was read');
      assert.deepEqual(
        sent.filter((r) => !r.endsWith('/.well-known/ssf-configuration')),
        [],
        'nothing but the configuration was asked',
      );
    } finally {
      upstream.mode = 'ok';
    }
    await setStatus({ status: 'enabled' });
  });

  it('does not follow a redirect from an upstream endpoint (nor send the token and body on)', async () => {
    upstream.mode = 'redirect';
    try {
      const before = upstream.requests.length;
      assertError(
        await t.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/verify`, { accessToken: ACCESS_TOKEN }),
        502,
        'SSF_UPSTREAM_INVALID',
      );
      assert.match((await source()).verification.error, /redirect/);
      assertError(
        await t.admin.request('POST', `/v1/admin/ssf/transmitters/${id}/stream`, { accessToken: ACCESS_TOKEN }),
        502,
        'SSF_UPSTREAM_INVALID',
      );
      const paused = await setStatus({ status: 'paused', accessToken: ACCESS_TOKEN });
      assert.equal(paused.upstream.ok, false);
      assert.match(paused.upstream.error, /redirect/);
      const sent = upstream.requests.slice(before);
      assert.ok(sent.some((r) => r.startsWith('POST') && r.endsWith('/ssf/verify')));
      assert.deepEqual(
        sent.filter((r) => r.includes('/elsewhere')),
        [],
        'no redirect followed',
      );
    } finally {
      upstream.mode = 'ok';
    }
    await setStatus({ status: 'enabled' });
  });
});
