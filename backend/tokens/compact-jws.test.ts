import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { compactVerify } from 'jose';
import { JwsRejected, parseEs256, signEs256, verifyEs256 } from './compact-jws.js';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });

/** A compact JWS under any header, validly signed ES256 (what a holder of the key could make). */
function signed(header: object, payload: object): string {
  const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

describe('compact JWS (node:crypto ES256)', () => {
  it('signs what jose verifies, and verifies its own signature under that key only', async () => {
    const token = signEs256({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' }, { sub: 'op_1', n: 1 }, privateKey);
    const { payload, protectedHeader } = await compactVerify(token, publicKey, { algorithms: ['ES256'] });
    assert.deepEqual(JSON.parse(Buffer.from(payload).toString()), { sub: 'op_1', n: 1 });
    assert.equal(protectedHeader.typ, 'at+jwt');
    const parsed = parseEs256(token, 'at+jwt');
    assert.equal(parsed.kid, 'k1');
    assert.equal(verifyEs256(parsed, publicKey), true);
    assert.equal(verifyEs256(parsed, other.publicKey), false);
  });

  it('refuses, even validly signed: another alg, another typ, a crit or b64 parameter, no kid, a malformed token', () => {
    const payload = { sub: 'op_1' };
    const refused = (token: string, typ: string | undefined = 'at+jwt') =>
      assert.throws(() => parseEs256(token, typ), JwsRejected, token.slice(0, 40));
    refused(signed({ alg: 'ES384', typ: 'at+jwt', kid: 'k1' }, payload));
    refused(signed({ alg: 'none', typ: 'at+jwt', kid: 'k1' }, payload));
    refused(signed({ alg: 'ES256', typ: 'JWT', kid: 'k1' }, payload));
    refused(signed({ alg: 'ES256', typ: 'at+jwt', kid: 'k1', crit: ['exp'], exp: 1 }, payload));
    refused(signed({ alg: 'ES256', typ: 'at+jwt', kid: 'k1', b64: false, crit: ['b64'] }, payload));
    refused(signed({ alg: 'ES256', typ: 'at+jwt' }, payload));
    refused(signed({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' }, payload).split('.').slice(0, 2).join('.'));
    refused(`${signed({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' }, payload)}.x`);
    refused('e30.W10.AAAA'); // a payload that is JSON but not an object
    refused('x'.repeat(20_000));
    // The same header and payload, accepted: the refusals above are the header's.
    assert.equal(parseEs256(signed({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' }, payload), 'at+jwt').kid, 'k1');
  });
});
