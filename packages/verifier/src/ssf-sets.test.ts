import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { createRemoteJWKSet, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { RevocationList } from './revocation-list.js';
import { KeysWait, SetApplier, SetRefused } from './ssf-sets.js';

/**
 * A SET whose keys cannot be had now is not the SET's fault: the poll subscription then neither acknowledges nor
 * reports it (reported in `setErrs`, Baton would never hand it out again, and the revocation it carries would be
 * lost to this app server), and the push receiver answers 503 rather than 400.
 */
const ISSUER = 'https://baton.bank.example';
const AUDIENCE = 'urn:bank:teller';

async function keys(kid = 'ssf-1') {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const set = (jti: string) =>
    new SignJWT({
      sub_id: { format: 'complex', session: { format: 'opaque', id: 'ses_1' } },
      events: { 'https://schemas.openid.net/secevent/caep/event-type/session-revoked': { event_timestamp: 1 } },
    })
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'secevent+jwt' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setJti(jti)
      .setIssuedAt()
      .sign(privateKey);
  return { jwk, set };
}

/** Baton's `jwks_uri`, answering with `status` (and the key set when 200). */
async function jwksAt(status: () => number, body: () => unknown): Promise<{ url: URL; server: Server }> {
  const server = createServer((_req, res) => {
    const code = status();
    res.writeHead(code, { 'content-type': 'application/json' }).end(code === 200 ? JSON.stringify(body()) : 'down');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/ssf/jwks.json`), server };
}

async function outcome(promise: Promise<unknown>): Promise<SetRefused | 'applied'> {
  return promise.then(
    () => 'applied' as const,
    (error: unknown) => {
      assert.ok(error instanceof SetRefused, String(error));
      return error;
    },
  );
}

describe('the SETs of Baton’s stream when its keys cannot be had', () => {
  it('an error status from the jwks_uri is transient, and the same SET applies once the keys are back', async () => {
    const { jwk, set } = await keys();
    let status = 503;
    const { url, server } = await jwksAt(
      () => status,
      () => ({ keys: [jwk] }),
    );
    const list = new RevocationList(Date.now);
    const sets = new SetApplier({ list, clock: Date.now });
    const expect = { issuer: ISSUER, audience: AUDIENCE, jwks: createRemoteJWKSet(url) };
    try {
      const jwt = await set('set-1');
      const first = await outcome(sets.apply(jwt, expect));
      assert.ok(first !== 'applied');
      assert.equal(first.transient, true, 'a 503 from the jwks_uri is reported as the SET’s fault');
      assert.equal(first.err, 'invalid_key');
      status = 200;
      assert.equal(await outcome(sets.apply(jwt, expect)), 'applied');
      assert.equal(list.refuses({ sid: 'ses_1' }), 'session', 'the revocation is in');
    } finally {
      server.close();
    }
  });

  it('a jwks_uri that refuses connections is transient; a SET signed with a key Baton does not hold is not', async () => {
    const { set } = await keys();
    const stranger = await keys();
    const closed = await jwksAt(
      () => 200,
      () => ({ keys: [] }),
    );
    const gone = closed.url;
    closed.server.close();
    const sets = new SetApplier({ list: new RevocationList(Date.now), clock: Date.now });
    const unreachable = await outcome(
      sets.apply(await set('set-2'), { issuer: ISSUER, audience: AUDIENCE, jwks: createRemoteJWKSet(gone) }),
    );
    assert.ok(unreachable !== 'applied');
    assert.equal(unreachable.transient, true);

    const { url, server } = await jwksAt(
      () => 200,
      () => ({ keys: [stranger.jwk] }),
    );
    try {
      // Baton's key set holds another key under the same kid: the SET does not verify, for good.
      const forged = await outcome(
        sets.apply(await set('set-3'), { issuer: ISSUER, audience: AUDIENCE, jwks: createRemoteJWKSet(url) }),
      );
      assert.ok(forged !== 'applied');
      assert.equal(forged.transient, false);
      assert.equal(forged.err, 'invalid_key');
    } finally {
      server.close();
    }
  });

  it('a SET signed with a key Baton rotated to just after the key set was fetched is applied, not refused', async () => {
    const before = await keys('ssf-1');
    const rotated = await keys('ssf-2');
    let published = [before.jwk];
    const { url, server } = await jwksAt(
      () => 200,
      () => ({ keys: published }),
    );
    const list = new RevocationList(Date.now);
    const sets = new SetApplier({ list, clock: Date.now });
    const expect = { issuer: ISSUER, audience: AUDIENCE, jwks: createRemoteJWKSet(url) };
    try {
      assert.equal(await outcome(sets.apply(await before.set('set-4'), expect)), 'applied');
      // Within jose's 30 s cooldown after that fetch, jose itself would not look at the key set again.
      published = [before.jwk, rotated.jwk];
      assert.equal(await outcome(sets.apply(await rotated.set('set-5'), expect)), 'applied');
    } finally {
      server.close();
    }
  });
});

describe('KeysWait: how long revocations count as unheard while SETs wait for keys', () => {
  it('counts from the first SET that waits until every waiting SET is done, whatever else verifies meanwhile', () => {
    let now = 1_000;
    const wait = new KeysWait(() => now);
    assert.equal(wait.forMs(), 0);
    wait.waits('set-a');
    now += 400;
    wait.waits('set-b');
    wait.done('set-c'); // another SET verified with a cached key: set-a and set-b still wait
    now += 100;
    assert.equal(wait.forMs(), 500);
    wait.done('set-a');
    assert.equal(wait.forMs(), 500);
    wait.done('set-b');
    assert.equal(wait.forMs(), 0);
  });
});
