/**
 * The ES256 fast path against @simplewebauthn/server's `verifyAuthenticationResponse`, response by
 * response: it may leave any response to the library, but whatever it accepts the library accepts
 * with the same `authenticationInfo`, and it takes the shape every security key sends.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { encodeCBOR, type CBORType } from '@levischuck/tiny-cbor';
import { verifyAuthenticationResponse, type AuthenticationResponseJSON } from '@simplewebauthn/server';
import { Es256Assertions, KEY_CACHE_SIZE } from './es256-assertions.js';

const RP_ID = 'baton.test';
const ORIGIN = 'https://baton.test';
const ORIGINS = [ORIGIN, 'https://other.baton.test'];
const CHALLENGE = randomBytes(32).toString('base64url');

interface Key {
  privateKey: KeyObject;
  cose: Uint8Array<ArrayBuffer>;
}

function coseKey(entries: [number, CBORType][]): Uint8Array<ArrayBuffer> {
  return new Uint8Array(encodeCBOR(new Map<number, CBORType>(entries)));
}

function p256(alg = -7): Key {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const cose = coseKey([
    [1, 2],
    [3, alg],
    [-1, 1],
    [-2, Buffer.from(jwk.x!, 'base64url')],
    [-3, Buffer.from(jwk.y!, 'base64url')],
  ]);
  return { privateKey, cose };
}

interface Parts {
  flags: number;
  counter: number;
  rpId: string;
  client: Record<string, unknown>;
  /** Raw bytes instead of JSON.stringify(client). */
  clientBytes?: Buffer;
  /** Appended to authenticatorData (after the 37 bytes). */
  tail?: Buffer;
}

const UP = 0x01;
const UV = 0x04;
const BE = 0x08;
const BS = 0x10;
const AT = 0x40;
const ED = 0x80;

function parts(over: Partial<Parts> = {}): Parts {
  return {
    flags: UP | UV,
    counter: 7,
    rpId: RP_ID,
    client: { type: 'webauthn.get', challenge: CHALLENGE, origin: ORIGIN, crossOrigin: false },
    ...over,
  };
}

function authData(p: Parts): Buffer {
  const counter = Buffer.alloc(4);
  counter.writeUInt32BE(p.counter >>> 0);
  return Buffer.concat([
    createHash('sha256').update(p.rpId).digest(),
    Buffer.from([p.flags]),
    counter,
    p.tail ?? Buffer.alloc(0),
  ]);
}

interface Signed {
  authData: Buffer;
  clientData: Buffer;
  signature: Buffer;
}

function signParts(key: Key, p: Parts): Signed {
  const data = authData(p);
  const clientData = p.clientBytes ?? Buffer.from(JSON.stringify(p.client));
  const signature = sign(
    'sha256',
    Buffer.concat([data, createHash('sha256').update(clientData).digest()]),
    key.privateKey,
  );
  return { authData: data, clientData, signature };
}

function response(s: Signed, id = 'Y3JlZGVudGlhbA'): AuthenticationResponseJSON {
  return {
    id,
    rawId: id,
    type: 'public-key',
    response: {
      clientDataJSON: s.clientData.toString('base64url'),
      authenticatorData: s.authData.toString('base64url'),
      signature: s.signature.toString('base64url'),
      userHandle: 'dXNlcg',
    },
    clientExtensionResults: {},
  };
}

type Outcome = { accepted: true; info: unknown } | { accepted: false; error: string };

async function library(
  res: AuthenticationResponseJSON,
  key: Uint8Array<ArrayBuffer>,
  counter: number,
  requireUv: boolean,
): Promise<Outcome> {
  try {
    const result = await verifyAuthenticationResponse({
      response: res,
      expectedChallenge: CHALLENGE,
      expectedOrigin: [...ORIGINS],
      expectedRPID: RP_ID,
      expectedType: 'webauthn.get',
      credential: { id: 'Y3JlZGVudGlhbA', publicKey: new Uint8Array(key), counter },
      requireUserVerification: requireUv,
    });
    return result.verified ? { accepted: true, info: result.authenticationInfo } : { accepted: false, error: 'false' };
  } catch (error) {
    return { accepted: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/** Runs both on one response; fails when the fast path accepts what the library refuses, or differs. */
async function compare(
  fast: Es256Assertions,
  res: AuthenticationResponseJSON,
  key: Uint8Array<ArrayBuffer>,
  { counter = 0, requireUv = true }: { counter?: number; requireUv?: boolean } = {},
): Promise<{ fast: 'accepted' | 'deferred'; library: Outcome }> {
  const lib = await library(res, key, counter, requireUv);
  const mine = await fast.verify(res, CHALLENGE, { id: 'Y3JlZGVudGlhbA', publicKey: key, counter }, requireUv);
  if (mine !== undefined) {
    assert.ok(lib.accepted, `the fast path accepted what the library refused: ${lib.accepted ? '' : lib.error}`);
    assert.deepEqual(mine, lib.info);
  }
  return { fast: mine === undefined ? 'deferred' : 'accepted', library: lib };
}

function withResponse(
  res: AuthenticationResponseJSON,
  change: (r: Record<string, unknown>, inner: Record<string, unknown>) => void,
): AuthenticationResponseJSON {
  const copy = structuredClone(res) as unknown as Record<string, unknown>;
  change(copy, copy.response as Record<string, unknown>);
  return copy as unknown as AuthenticationResponseJSON;
}

/** A DER ECDSA signature's r and s (strict DER, short lengths: what OpenSSL and keys produce). */
function derParts(der: Buffer): { r: Buffer; s: Buffer } {
  assert.equal(der[0], 0x30);
  const rLen = der[3]!;
  const r = der.subarray(4, 4 + rLen);
  const s = der.subarray(6 + rLen, 6 + rLen + der[5 + rLen]!);
  return { r, s };
}

function derOf(r: Buffer, s: Buffer, { longForm = false } = {}): Buffer {
  const body = Buffer.concat([Buffer.from([0x02, r.length]), r, Buffer.from([0x02, s.length]), s]);
  return Buffer.concat([longForm ? Buffer.from([0x30, 0x81, body.length]) : Buffer.from([0x30, body.length]), body]);
}

const N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

function bigToBytes(n: bigint): Buffer {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  const bytes = Buffer.from(hex, 'hex');
  return bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
}

describe('Es256Assertions against verifyAuthenticationResponse', () => {
  it('accepts what a security key sends, with the library’s authenticationInfo, and caches the key', async () => {
    const key = p256();
    const fast = new Es256Assertions(RP_ID, ORIGINS);
    for (const flags of [UP | UV, UP | UV | BE, UP | UV | BE | BS]) {
      const got = await compare(fast, response(signParts(key, parts({ flags }))), key.cose);
      assert.equal(got.fast, 'accepted', `flags ${flags}`);
    }
    const upOnly = await compare(fast, response(signParts(key, parts({ flags: UP }))), key.cose, { requireUv: false });
    assert.equal(upOnly.fast, 'accepted');
    const otherOrigin = parts({ client: { ...parts().client, origin: ORIGINS[1] } });
    assert.equal((await compare(fast, response(signParts(key, otherOrigin)), key.cose)).fast, 'accepted');
    const noCrossOrigin = parts({ client: { type: 'webauthn.get', challenge: CHALLENGE, origin: ORIGIN } });
    assert.equal((await compare(fast, response(signParts(key, noCrossOrigin)), key.cose)).fast, 'accepted');
    const stored = await compare(fast, response(signParts(key, parts({ counter: 9 }))), key.cose, { counter: 8 });
    assert.equal(stored.fast, 'accepted');
    const zero = await compare(fast, response(signParts(key, parts({ counter: 0 }))), key.cose);
    assert.equal(zero.fast, 'accepted', 'a key without a counter (always 0)');
    assert.equal(fast.stats.accepted, 8);
  });

  it('leaves every refusal to the library: each rule broken once', async () => {
    const key = p256();
    const other = p256();
    const fast = new Es256Assertions(RP_ID, ORIGINS);
    const base = parts();
    const client = base.client;
    const cases: [string, AuthenticationResponseJSON, { counter?: number; requireUv?: boolean }?][] = [
      ['wrong challenge', response(signParts(key, parts({ client: { ...client, challenge: 'AAAA' } })))],
      ['wrong origin', response(signParts(key, parts({ client: { ...client, origin: 'https://evil.test' } })))],
      ['registration type', response(signParts(key, parts({ client: { ...client, type: 'webauthn.create' } })))],
      ['no type', response(signParts(key, parts({ client: { challenge: CHALLENGE, origin: ORIGIN } })))],
      ['challenge not a string', response(signParts(key, parts({ client: { ...client, challenge: 1 } })))],
      ['wrong RP ID', response(signParts(key, parts({ rpId: 'evil.test' })))],
      ['no user presence', response(signParts(key, parts({ flags: UV })))],
      ['no user verification', response(signParts(key, parts({ flags: UP })))],
      ['backed up, not eligible', response(signParts(key, parts({ flags: UP | UV | BS })))],
      ['counter went back', response(signParts(key, parts({ counter: 3 }))), { counter: 5 }],
      ['counter stood still', response(signParts(key, parts({ counter: 5 }))), { counter: 5 }],
      ['counter 0 after 5', response(signParts(key, parts({ counter: 0 }))), { counter: 5 }],
      ['signed by another key', response(signParts(other, base))],
      ['a trailing byte', response(signParts(key, parts({ tail: Buffer.from([0]) })))],
      ['AT flag, nothing attested', response(signParts(key, parts({ flags: UP | UV | AT })))],
      ['ED flag, no extensions', response(signParts(key, parts({ flags: UP | UV | ED })))],
    ];
    const good = response(signParts(key, base));
    const flipped = Buffer.from(good.response.signature, 'base64url');
    flipped[flipped.length - 1]! ^= 1;
    cases.push(['signature bit flipped', withResponse(good, (_, r) => (r.signature = flipped.toString('base64url')))]);
    cases.push(['signature empty', withResponse(good, (_, r) => (r.signature = ''))]);
    cases.push(['id differs from rawId', withResponse(good, (r) => (r.rawId = 'b3RoZXI'))]);
    cases.push(['id empty', withResponse(good, (r) => ((r.id = ''), (r.rawId = '')))]);
    cases.push(['type', withResponse(good, (r) => (r.type = 'password'))]);
    cases.push(['userHandle a number', withResponse(good, (_, r) => (r.userHandle = 5))]);
    cases.push(['clientDataJSON not base64url', withResponse(good, (_, r) => (r.clientDataJSON = '!!!!'))]);
    cases.push(['authenticatorData short', withResponse(good, (_, r) => (r.authenticatorData = 'AAAA'))]);
    const rejected = [];
    for (const [name, res, opts] of cases) {
      const got = await compare(fast, res, key.cose, opts);
      assert.equal(got.fast, 'deferred', name);
      if (!got.library.accepted) rejected.push(name);
    }
    // The library refuses each of them too (the fast path only defers; the library words the refusal).
    assert.deepEqual(
      rejected,
      cases.map(([name]) => name),
    );
    assert.equal(fast.stats.accepted, 0);
  });

  it('defers what the library reads more loosely or looks into further, and never disagrees on it', async () => {
    const key = p256();
    const fast = new Es256Assertions(RP_ID, ORIGINS);
    const base = parts();
    const good = signParts(key, base);
    const { r, s } = derParts(good.signature);
    const run = (res: AuthenticationResponseJSON) => compare(fast, res, key.cose);

    // Padding on the base64url strings: the library allows it; the fast path leaves it to the library.
    const padded = withResponse(response(good), (_, x) => (x.signature = `${String(x.signature)}==`));
    assert.equal((await run(padded)).fast, 'deferred');
    // BER long-form length: the library's ASN.1 parser may read it; OpenSSL's strict DER does not.
    const ber = signParts(key, base);
    ber.signature = derOf(r, s, { longForm: true });
    assert.equal((await run(response(ber))).fast, 'deferred');
    // The high-s twin verifies in both (ECDSA is malleable; the identity of a use is the counter and challenge).
    const sValue = BigInt(`0x${Buffer.from(s[0] === 0 ? s.subarray(1) : s).toString('hex')}`);
    const twin = signParts(key, base);
    twin.signature = derOf(r, bigToBytes(N - sValue));
    const twinResult = await run(response(twin));
    assert.equal(twinResult.library.accepted, true);
    assert.equal(twinResult.fast, 'accepted');
    // r = 0, s = n: refused by both.
    const zero = signParts(key, base);
    zero.signature = derOf(Buffer.from([0]), s);
    assert.equal((await run(response(zero))).library.accepted, false);
    const sn = signParts(key, base);
    sn.signature = derOf(r, bigToBytes(N));
    assert.equal((await run(response(sn))).library.accepted, false);
    // The raw r‖s form (not DER).
    const raw = signParts(key, base);
    raw.signature = Buffer.concat([Buffer.from(r.subarray(r.length - 32)), Buffer.from(s.subarray(s.length - 32))]);
    assert.equal((await run(response(raw))).fast, 'deferred');
    // Cross-origin, top origin and token binding in clientData: the library looks into them.
    for (const extra of [
      { crossOrigin: true },
      { crossOrigin: true, topOrigin: ORIGIN },
      { topOrigin: ORIGIN },
      { tokenBinding: { status: 'present' } },
      { tokenBinding: { status: 'bogus' } },
    ]) {
      const res = response(signParts(key, parts({ client: { ...base.client, ...extra } })));
      assert.equal((await run(res)).fast, 'deferred', JSON.stringify(extra));
    }
    // Non-ASCII or a byte-order mark in clientDataJSON (decoders may differ): deferred.
    const json = JSON.stringify({ ...base.client, note: 'Łódź' });
    assert.equal((await run(response(signParts(key, parts({ clientBytes: Buffer.from(json) }))))).fast, 'deferred');
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(base.client))]);
    assert.equal((await run(response(signParts(key, parts({ clientBytes: bom }))))).fast, 'deferred');
    // Extension data: the library decodes it.
    const ext = encodeCBOR(new Map<string, CBORType>([['credProtect', 1]]));
    const withExt = response(signParts(key, parts({ flags: UP | UV | ED, tail: Buffer.from(ext) })));
    assert.equal((await run(withExt)).fast, 'deferred');
  });

  it('verifies only ES256 on P-256 keys itself; other keys go to the library', async () => {
    const fast = new Es256Assertions(RP_ID, ORIGINS);
    const es256 = p256();
    const cases: [string, Key][] = [];
    // P-384 with alg -7 (the library verifies SHA-256 on P-384).
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const j384 = p384.publicKey.export({ format: 'jwk' });
    cases.push([
      'P-384',
      {
        privateKey: p384.privateKey,
        cose: coseKey([
          [1, 2],
          [3, -7],
          [-1, 2],
          [-2, Buffer.from(j384.x!, 'base64url')],
          [-3, Buffer.from(j384.y!, 'base64url')],
        ]),
      },
    ]);
    // The same P-256 key labelled ES384, or with no alg.
    const jwk = es256.privateKey.export({ format: 'jwk' });
    const x = Buffer.from(jwk.x!, 'base64url');
    const y = Buffer.from(jwk.y!, 'base64url');
    cases.push([
      'ES384 label',
      {
        privateKey: es256.privateKey,
        cose: coseKey([
          [1, 2],
          [3, -35],
          [-1, 1],
          [-2, x],
          [-3, y],
        ]),
      },
    ]);
    cases.push([
      'no alg',
      {
        privateKey: es256.privateKey,
        cose: coseKey([
          [1, 2],
          [-1, 1],
          [-2, x],
          [-3, y],
        ]),
      },
    ]);
    // A point off the curve.
    const offCurve = Buffer.from(y);
    offCurve[31]! ^= 1;
    cases.push([
      'off the curve',
      {
        privateKey: es256.privateKey,
        cose: coseKey([
          [1, 2],
          [3, -7],
          [-1, 1],
          [-2, x],
          [-3, offCurve],
        ]),
      },
    ]);
    cases.push([
      'short x',
      {
        privateKey: es256.privateKey,
        cose: coseKey([
          [1, 2],
          [3, -7],
          [-1, 1],
          [-2, x.subarray(1)],
          [-3, y],
        ]),
      },
    ]);
    cases.push([
      'kty OKP',
      {
        privateKey: es256.privateKey,
        cose: coseKey([
          [1, 1],
          [3, -7],
          [-1, 1],
          [-2, x],
          [-3, y],
        ]),
      },
    ]);
    cases.push([
      'crv P-384 id',
      {
        privateKey: es256.privateKey,
        cose: coseKey([
          [1, 2],
          [3, -7],
          [-1, 2],
          [-2, x],
          [-3, y],
        ]),
      },
    ]);
    const x33 = Buffer.concat([Buffer.from([0]), x]);
    cases.push([
      '33-byte x',
      {
        privateKey: es256.privateKey,
        cose: coseKey([
          [1, 2],
          [3, -7],
          [-1, 1],
          [-2, x33],
          [-3, y],
        ]),
      },
    ]);
    cases.push(['not CBOR', { privateKey: es256.privateKey, cose: new Uint8Array(Buffer.from('not cbor')) }]);
    for (const [name, key] of cases) {
      const got = await compare(fast, response(signParts(key, parts())), key.cose);
      assert.equal(got.fast, 'deferred', name);
    }
    // A key that is not a Uint8Array (the library takes an ArrayBuffer): deferred, never thrown.
    const asArrayBuffer = es256.cose.buffer.slice(es256.cose.byteOffset, es256.cose.byteOffset + es256.cose.byteLength);
    const notBytes = await fast.verify(
      response(signParts(es256, parts())),
      CHALLENGE,
      { id: 'a', publicKey: asArrayBuffer as unknown as Uint8Array<ArrayBuffer>, counter: 0 },
      true,
    );
    assert.equal(notBytes, undefined);
    // An Ed25519 credential (alg -8).
    const ed = generateKeyPairSync('ed25519');
    const edX = Buffer.from(ed.publicKey.export({ format: 'jwk' }).x!, 'base64url');
    const edCose = coseKey([
      [1, 1],
      [3, -8],
      [-1, 6],
      [-2, edX],
    ]);
    const p = parts();
    const data = authData(p);
    const clientData = Buffer.from(JSON.stringify(p.client));
    const signature = sign(
      null,
      Buffer.concat([data, createHash('sha256').update(clientData).digest()]),
      ed.privateKey,
    );
    const edResult = await compare(fast, response({ authData: data, clientData, signature }), edCose);
    assert.equal(edResult.fast, 'deferred');
    assert.equal(edResult.library.accepted, true, 'the library verifies the Ed25519 response');
  });

  it('agrees with the library on 600 random mutations of a valid response', async () => {
    const key = p256();
    const fast = new Es256Assertions(RP_ID, ORIGINS);
    const good = signParts(key, parts());
    let accepted = 0;
    for (let i = 0; i < 600; i++) {
      const s: Signed = {
        authData: Buffer.from(good.authData),
        clientData: Buffer.from(good.clientData),
        signature: Buffer.from(good.signature),
      };
      const target = [s.authData, s.clientData, s.signature][i % 3]!;
      const at = randomBytes(2).readUInt16BE() % target.length;
      target[at]! ^= 1 << i % 8;
      const got = await compare(fast, response(s), key.cose);
      if (got.library.accepted) accepted++;
    }
    // Almost every flip breaks the signature; the few the library accepts (none expected) were compared above.
    assert.ok(accepted <= 6, `${accepted} mutated responses verified`);
  });

  it('keeps at most KEY_CACHE_SIZE keys and still verifies a key it dropped', async () => {
    const fast = new Es256Assertions(RP_ID, ORIGINS);
    const verifies = async (key: Key, id: string) =>
      (await fast.verify(
        response(signParts(key, parts())),
        CHALLENGE,
        { id, publicKey: key.cose, counter: 0 },
        true,
      )) !== undefined;
    const first = p256();
    const keys = fast as unknown as { keys: Map<string, unknown> };
    assert.ok(await verifies(first, 'a'));
    for (let i = 0; keys.keys.size < KEY_CACHE_SIZE; i++) {
      keys.keys.set(`filler-${i}`, null);
    }
    assert.ok(await verifies(p256(), 'b'));
    assert.equal(keys.keys.size, KEY_CACHE_SIZE);
    assert.ok(await verifies(first, 'a'), 'the first key was dropped for the second, and imported again');
  });
});
