/**
 * The app servers' login to the revocation stream, at the edges of its clock rules: an `iat` up to 30 s
 * ahead of Baton's clock (skew) is taken, one more is refused, whatever the fraction of the second.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import pino from 'pino';
import { BatonError } from '../../shared/errors.js';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import { InProcessBus } from '../cluster/bus.js';
import type { Store } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { tempDir } from '../temp-dir.js';
import { REVOCATION_STREAM_AUDIENCE, RevocationFeed } from './revocation-feed.js';

const APP = 'urn:bank:teller';
/** Baton's clock: 12:00:00.900, late in its second (the login's `iat` is whole seconds). */
const NOW = Date.UTC(2026, 11, 7, 12, 0, 0) + 900;
const NOW_S = Math.floor(NOW / 1000);

describe('revocation stream login: how far ahead its iat may be', () => {
  let store: Store;
  let feed: RevocationFeed;
  let sign: (iat: number, jti: string) => Promise<string>;

  before(async () => {
    const logger = pino({ level: 'silent' });
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const revocationKey = (await exportJWK(publicKey)) as NonNullable<Policy['apps']>[number]['revocationKey'];
    const policy: Policy = {
      ...DEFAULT_POLICY,
      apps: [{ audience: APP, name: 'Teller', actions: ['cash.withdraw'], revocationKey }],
    };
    store = openSqliteStore({ dataDir: tempDir('baton-feed-'), durability: 'normal' });
    feed = new RevocationFeed({
      store,
      bus: new InProcessBus({ nodeId: 'node-feed', logger }),
      clock: () => NOW,
      logger,
      policy: () => policy,
    });
    sign = (iat, jti) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer(APP)
        .setSubject(APP)
        .setAudience(REVOCATION_STREAM_AUDIENCE)
        .setJti(jti)
        .setIssuedAt(iat)
        .setExpirationTime(iat + 300)
        .sign(privateKey);
  });
  after(async () => {
    feed.close();
    await store.close();
  });

  const login = async (iat: number, jti: string) =>
    feed.authenticate({ headers: { authorization: `Bearer ${await sign(iat, jti)}` } } as IncomingMessage);

  it('takes a login issued now, a minute ago, or up to 30 s ahead (clock skew)', async () => {
    for (const [ahead, jti] of [
      [0, 'now'],
      [-60, 'minute-ago'],
      [29, 'ahead-29'],
      [30, 'ahead-30'],
    ] as const) {
      assert.equal(await login(NOW_S + ahead, jti), APP, `${ahead} s`);
    }
  });

  it('refuses one issued 31 s ahead or more, without using up its jti', async () => {
    for (const ahead of [31, 3600, 365 * 24 * 3600]) {
      await assert.rejects(login(NOW_S + ahead, `ahead-${ahead}`), (error: unknown) => {
        assert.ok(error instanceof BatonError);
        assert.equal(error.code, 'APP_AUTH_INVALID');
        assert.match(error.message, new RegExp(`issued in the future \\(its iat is ${ahead} s ahead`));
        return true;
      });
    }
    // Refused before its single use was claimed: the same jti, once the clock allows it, still logs in.
    assert.equal(await login(NOW_S + 30, 'ahead-31'), APP);
  });
});
