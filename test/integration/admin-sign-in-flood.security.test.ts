import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server';
import { AdminBrowser } from '../helpers/admin-session.js';
import { AddressedClient, type AddressedReply } from '../helpers/addressed-client.js';
import { assertError, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

/**
 * Anyone who can reach the backend can reach the admin console's sign-in. They must not be able to
 * stop an admin signing in during an incident: by flooding the sign-in options (which used to evict
 * every admin's outstanding challenge from one shared pool of 256), or by failing assertions with an
 * admin's credential id (which used to lock the admin out after 100).
 */

type Reply = AddressedReply;

/** A browser on another machine, at `origin`, posting JSON to the admin sign-in. */
class RemoteClient extends AddressedClient {
  constructor(
    port: number,
    localAddress: string,
    readonly origin: string,
  ) {
    super(port, localAddress);
  }

  post(path: string, payload: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    return this.send(path, 'application/json', JSON.stringify(payload), { origin: this.origin, ...headers });
  }

  /** `count` sign-in option requests, `parallel` at a time; the statuses and error codes seen. */
  async flood(count: number, headers: () => Record<string, string> = () => ({})): Promise<Reply[]> {
    const replies: Reply[] = [];
    for (let sent = 0; sent < count; sent += 50) {
      const batch = Array.from({ length: Math.min(50, count - sent) }, () =>
        this.post('/v1/admin/auth/sign-in/options', {}, headers()),
      );
      replies.push(...(await Promise.all(batch)));
    }
    return replies;
  }
}

/** Signs the first admin up: a passkey registered in the admin console, signed in. */
async function firstAdmin(t: TestBackend): Promise<AdminBrowser> {
  const first = await t.admin.ok('POST', '/v1/admin/bootstrap', { id: 'grace', displayName: 'Grace Admin' });
  const grace = new AdminBrowser(t.url, t.backend.adminOrigin);
  const registered = await grace.register(first.code as string);
  assert.equal(registered.status, 201, JSON.stringify(registered.body));
  return grace;
}

async function floodEvents(admin: AdminBrowser): Promise<Json[]> {
  const { events } = await admin.ok('GET', '/v1/admin/events?type=sign-in-failed&limit=1000');
  return (events as Json[]).filter((e) => e.reasons.includes('admin-sign-in-rate-limited'));
}

function summary(replies: Reply[]): Record<string, number> {
  const seen: Record<string, number> = {};
  for (const r of replies) {
    const key = `${r.status} ${r.body.error?.code ?? 'ok'}`;
    seen[key] = (seen[key] ?? 0) + 1;
  }
  return seen;
}

describe('an attacker flooding the admin sign-in', () => {
  let t: TestBackend;
  let grace: AdminBrowser;
  let attacker: RemoteClient;
  let now = Date.now();
  before(async () => {
    t = await startTestBackend({}, { clock: () => now });
    grace = await firstAdmin(t);
    attacker = new RemoteClient(t.backend.port, '127.0.0.2', t.backend.adminOrigin);
  });
  after(async () => {
    attacker?.close();
    await t?.stop();
  });

  it('does not make an admin sign-in fail: 1000 option requests from one address evict nothing and are refused with 429', async () => {
    const admin = new AdminBrowser(t.url, t.backend.adminOrigin, grace.authenticator);
    const { options } = await admin.ok('POST', '/v1/admin/auth/sign-in/options', {});

    const replies = await attacker.flood(1000);

    const seen = summary(replies);
    assert.equal(seen['200 ok'], 20, `the attacker gets its burst of 20, no more: ${JSON.stringify(seen)}`);
    assert.equal(seen['429 ADMIN_SIGN_IN_RATE_LIMITED'], 980, JSON.stringify(seen));
    const refused = replies.find((r) => r.status === 429);
    assert.match(String(refused?.headers['retry-after']), /^[1-9]\d*$/, 'a refusal says when to come back');

    // The admin's challenge, issued before the flood, still works...
    const signedIn = await admin.request('POST', '/v1/admin/auth/sign-in/verify', {
      response: admin.authenticator.assert(options),
    });
    assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
    assert.equal(signedIn.body.admin.operatorId, 'grace');
    assert.ok(admin.cookie !== undefined, 'the admin holds a session cookie');
    // ...and so does a whole new sign-in from the admin's own address during the flood.
    const again = await new AdminBrowser(t.url, t.backend.adminOrigin, grace.authenticator).signIn();
    assert.equal(again.status, 200, JSON.stringify(again.body));

    // The flood is in the audit trail once for its window, not once per request.
    const recorded = await floodEvents(admin);
    assert.equal(recorded.length, 1, JSON.stringify(recorded));
    assert.equal(recorded[0].detail.client, '127.0.0.2');
    assert.equal(recorded[0].detail.surface, 'admin-console');
    assert.equal(recorded[0].outcome, 'failure');
  });

  it("cannot evict a challenge of an admin behind the same address, even though it exhausts that address's requests", async () => {
    const sharedNat = new RemoteClient(t.backend.port, '127.0.0.3', t.backend.adminOrigin);
    try {
      // Grace is behind the same NAT as the attacker: she asks for a challenge first.
      const { body } = await sharedNat.post('/v1/admin/auth/sign-in/options', {});
      const stolenAddress = await sharedNat.flood(1000);
      assert.equal(summary(stolenAddress)['429 ADMIN_SIGN_IN_RATE_LIMITED'], 981);
      // Her verify is limited like any request from that address, so it can be refused, but never
      // with CHALLENGE_UNKNOWN: once the address's bucket refills (20 a minute), her challenge is good.
      const response = grace.authenticator.assert(body.options as never);
      const refusedNow = await sharedNat.post('/v1/admin/auth/sign-in/verify', { response });
      assertError({ status: refusedNow.status, body: refusedNow.body }, 429, 'ADMIN_SIGN_IN_RATE_LIMITED');
      now += Number(refusedNow.headers['retry-after']) * 1000;
      const signedIn = await sharedNat.post('/v1/admin/auth/sign-in/verify', { response });
      assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
      assert.equal(signedIn.body.admin.operatorId, 'grace');
    } finally {
      sharedNat.close();
    }
  });
});

describe('client addresses behind a reverse proxy', () => {
  let t: TestBackend;
  let grace: AdminBrowser;
  before(async () => {
    // The "proxy" is whatever connects from 127.0.0.4.
    t = await startTestBackend({ trustProxy: ['127.0.0.4'] });
    grace = await firstAdmin(t);
  });
  after(() => t?.stop());

  it('limits each client named by a trusted proxy on its own, and records the client, not the proxy', async () => {
    const proxy = new RemoteClient(t.backend.port, '127.0.0.4', t.backend.adminOrigin);
    try {
      const flood = await proxy.flood(100, () => ({ 'x-forwarded-for': '198.51.100.7' }));
      assert.equal(summary(flood)['429 ADMIN_SIGN_IN_RATE_LIMITED'], 80);
      // The admin reaches the backend through the same proxy, from her own address.
      const admin = await proxy.post('/v1/admin/auth/sign-in/options', {}, { 'x-forwarded-for': '203.0.113.9' });
      assert.equal(admin.status, 200, JSON.stringify(admin.body));
      // A client cannot pose as another by sending its own X-Forwarded-For: the proxy appends the
      // address it saw, and only that entry is believed.
      const spoofed = await proxy.post(
        '/v1/admin/auth/sign-in/options',
        {},
        { 'x-forwarded-for': '203.0.113.9, 198.51.100.7' },
      );
      assertError({ status: spoofed.status, body: spoofed.body }, 429, 'ADMIN_SIGN_IN_RATE_LIMITED');
      const recorded = await floodEvents(grace);
      assert.deepEqual(
        recorded.map((e) => e.detail.client),
        ['198.51.100.7'],
      );
    } finally {
      proxy.close();
    }
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy: rotating it does not escape the limit', async () => {
    const direct = new RemoteClient(t.backend.port, '127.0.0.5', t.backend.adminOrigin);
    try {
      let n = 0;
      const flood = await direct.flood(100, () => ({ 'x-forwarded-for': `192.0.2.${++n % 250}` }));
      assert.equal(summary(flood)['429 ADMIN_SIGN_IN_RATE_LIMITED'], 80);
      const recorded = await floodEvents(grace);
      assert.ok(
        recorded.some((e) => e.detail.client === '127.0.0.5'),
        JSON.stringify(recorded.map((e) => e.detail)),
      );
    } finally {
      direct.close();
    }
  });
});

describe("failed assertions with an admin's credential id", () => {
  let t: TestBackend;
  let grace: AdminBrowser;
  let graceCredential: string;
  let now = Date.now();
  const mallory = new SoftAuthenticator('http://localhost:1');
  before(async () => {
    t = await startTestBackend({}, { clock: () => now });
    grace = await firstAdmin(t);
    graceCredential = [...grace.authenticator.credentials.keys()][0] ?? '';
    mallory.register({
      rp: { id: 'localhost', name: 'x' },
      user: { id: 'AAAA', name: 'mallory', displayName: 'Mallory' },
      challenge: 'AAAA',
      pubKeyCredParams: [],
    } as PublicKeyCredentialCreationOptionsJSON);
  });
  after(() => t?.stop());

  /** One forged sign-in with Grace's credential id from `client`: a valid challenge, Mallory's signature. */
  async function forge(client: RemoteClient): Promise<Reply> {
    const { body } = await client.post('/v1/admin/auth/sign-in/options', {});
    const response = { ...mallory.assert(body.options as never, { origin: t.backend.adminOrigin }) };
    return client.post('/v1/admin/auth/sign-in/verify', {
      response: { ...response, id: graceCredential, rawId: graceCredential },
    });
  }

  it('slows down the attacker, never the admin at another address, and never locks the admin out', async () => {
    const attacker = new RemoteClient(t.backend.port, '127.0.0.6', t.backend.adminOrigin);
    try {
      for (let i = 0; i < 5; i++) assertError(await forge(attacker), 400, 'WEBAUTHN_VERIFICATION_FAILED');
      const throttled = await forge(attacker);
      assertError({ status: throttled.status, body: throttled.body }, 429, 'ADMIN_SIGN_IN_THROTTLED');
      assert.equal(throttled.headers['retry-after'], '1');
      // Grace, elsewhere, is not slowed down at all.
      const elsewhere = await new AdminBrowser(t.url, t.backend.adminOrigin, grace.authenticator).signIn();
      assert.equal(elsewhere.status, 200, JSON.stringify(elsewhere.body));

      // Past the old lockout (100): each try waits out the back-off, which grows to 15 minutes.
      for (let i = 0; i < 100; i++) {
        now += 16 * 60_000;
        assertError(await forge(attacker), 400, 'WEBAUTHN_VERIFICATION_FAILED');
      }
      const stillThrottled = await forge(attacker);
      assert.equal(stillThrottled.body.error.code, 'ADMIN_SIGN_IN_THROTTLED');
      assert.equal(stillThrottled.headers['retry-after'], String(15 * 60));

      const admin = new AdminBrowser(t.url, t.backend.adminOrigin, grace.authenticator);
      const signedIn = await admin.signIn();
      assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
      // The operator is not locked for the consoles either.
      const { operator } = await admin.ok('GET', '/v1/admin/operators/grace');
      assert.equal(operator.failedAttempts, 0, JSON.stringify(operator));
      // Every failure is still in the audit trail, against Grace's passkey.
      const { events } = await admin.ok('GET', '/v1/admin/events?type=sign-in-failed&operator=grace&limit=1000');
      const failures = (events as Json[]).filter((e) => e.reasons.includes('webauthn-verification-failed'));
      assert.equal(failures.length, 105);
    } finally {
      attacker.close();
    }
  });
});
