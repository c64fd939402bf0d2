import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { calculateJwkThumbprint } from 'jose';
import type { P256PublicJwk } from '../../shared/http-api.js';
import { jwkThumbprint } from './console-signature.js';

/** The thumbprint as Baton computed it by hand before it used jose: stored `jkt` values must still match. */
function handWritten(jwk: P256PublicJwk): string {
  const canonical = `{"crv":"${jwk.crv}","kty":"${jwk.kty}","x":"${jwk.x}","y":"${jwk.y}"}`;
  return createHash('sha256').update(canonical).digest('base64url');
}

describe('jwkThumbprint (RFC 7638, by jose)', () => {
  it('gives the known thumbprint of the RFC 7517 appendix A.1 P-256 key', async () => {
    const jwk: P256PublicJwk = {
      kty: 'EC',
      crv: 'P-256',
      x: 'MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4',
      y: '4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM',
    };
    assert.equal(await jwkThumbprint(jwk), 'cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s');
  });

  it('relies on an implementation that gives RFC 7638 section 3.1 its published thumbprint', async () => {
    const rfcExample = {
      kty: 'RSA',
      n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      e: 'AQAB',
    };
    assert.equal(await calculateJwkThumbprint(rfcExample, 'sha256'), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });

  it('matches the thumbprints Baton stored before (hand-written canonical form) for fresh keys', async () => {
    for (let i = 0; i < 20; i++) {
      const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
      const key: P256PublicJwk = { kty: 'EC', crv: 'P-256', x: String(jwk.x), y: String(jwk.y) };
      assert.equal(await jwkThumbprint(key), handWritten(key));
    }
  });
});
