/**
 * The verifier's native ES256 addon (native/es256.c) against node:crypto, the reference: the same answer for every
 * signature, forgery and malformed input an attacker could send, and no input it takes in a way node:crypto would
 * not (a narrowed string, a key of another curve, a handle it did not make). Needs the addon built
 * (`npm run build:verifier-native`); without it these tests are skipped with the reason, unless
 * BATON_REQUIRE_NATIVE_VERIFIER=1 (.ci/run), which makes them fail instead.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NATIVE_ES256_PATH, es256Backend } from './es256-native.js';
import { ActionTokenVerifier, VerificationError } from './index.js';
import { AUD, NOW, signer, token } from './test-fixtures.js';

interface Binding {
  key(spki: Uint8Array): object;
  verify(key: object, signingInput: string, signature: Uint8Array): boolean;
}

const required = process.env.BATON_REQUIRE_NATIVE_VERIFIER === '1';
const built = existsSync(NATIVE_ES256_PATH);
const skip =
  built || required
    ? false
    : 'the native addon is not built here (npm run build:verifier-native needs g++, make, python3)';
const native = built ? (createRequire(import.meta.url)(NATIVE_ES256_PATH) as Binding) : undefined;

/** The order of P-256's group: a signature's r and s must lie in [1, n-1]. */
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

const toBytes = (x: bigint) => Buffer.from(x.toString(16).padStart(64, '0'), 'hex');
const toBigInt = (b: Buffer) => BigInt(`0x${b.toString('hex')}`);

function pair() {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { publicKey, privateKey, spki: publicKey.export({ type: 'spki', format: 'der' }) };
}

function es256(privateKey: KeyObject, input: string | Buffer): Buffer {
  return sign('sha256', typeof input === 'string' ? Buffer.from(input) : input, {
    key: privateKey,
    dsaEncoding: 'ieee-p1363',
  });
}

/** node:crypto's answer, the reference (a signature of the wrong length is false there too). */
function reference(publicKey: KeyObject, input: string, signature: Buffer): boolean {
  try {
    return verify('sha256', Buffer.from(input), { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

function nativeCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

describe('the native ES256 addon', { skip }, () => {
  it('is built, loaded and in use by the verifier', () => {
    assert.ok(built, `the native addon is missing at ${NATIVE_ES256_PATH}: run npm run build:verifier-native`);
    assert.equal(es256Backend.name, 'openssl-prepared', es256Backend.reason);
  });

  it('answers as node:crypto does for valid signatures, forgeries, other keys and other inputs', () => {
    const a = pair();
    const b = pair();
    const ka = native!.key(a.spki);
    const kb = native!.key(b.spki);
    for (let i = 0; i < 100; i++) {
      const input = `${randomBytes(20).toString('base64url')}.${randomBytes(200 + i).toString('base64url')}`;
      const signature = es256(a.privateKey, input);
      assert.equal(native!.verify(ka, input, signature), true, 'a valid signature verifies');
      assert.equal(native!.verify(kb, input, signature), false, "another key's check refuses it");
      const flipped = Buffer.from(signature);
      flipped[i % 64] = (flipped[i % 64] ?? 0) ^ (1 << i % 8);
      assert.equal(native!.verify(ka, input, flipped), reference(a.publicKey, input, flipped), 'a flipped bit');
      assert.equal(native!.verify(ka, input, flipped), false);
      const altered = input.slice(0, -1) + (input.endsWith('A') ? 'B' : 'A');
      assert.equal(native!.verify(ka, altered, signature), false, 'a changed signing input');
    }
  });

  it('refuses out-of-range and degenerate signatures, and accepts the high-s twin exactly as node:crypto does', () => {
    const a = pair();
    const ka = native!.key(a.spki);
    const input = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJvcF9hZGEifQ';
    const signature = es256(a.privateKey, input);
    const r = signature.subarray(0, 32);
    const s = signature.subarray(32);
    const cases: Record<string, Buffer> = {
      'r = 0': Buffer.concat([toBytes(0n), s]),
      's = 0': Buffer.concat([r, toBytes(0n)]),
      'r = n': Buffer.concat([toBytes(N), s]),
      's = n': Buffer.concat([r, toBytes(N)]),
      'r = r + n (mod 2^256)': Buffer.concat([toBytes((toBigInt(r) + N) % 2n ** 256n), s]),
      'all zero': Buffer.alloc(64),
      'all 0xff': Buffer.alloc(64, 0xff),
      'high s (n - s)': Buffer.concat([r, toBytes(N - toBigInt(s))]),
    };
    for (const [name, candidate] of Object.entries(cases)) {
      assert.equal(native!.verify(ka, input, candidate), reference(a.publicKey, input, candidate), name);
    }
    assert.equal(native!.verify(ka, input, cases['r = n']!), false);
    assert.equal(native!.verify(ka, input, cases['all zero']!), false);
    for (const length of [0, 32, 63, 65, 72]) {
      const wrong = Buffer.alloc(length, 1);
      signature.copy(wrong, 0, 0, Math.min(64, length));
      assert.equal(native!.verify(ka, input, wrong), false, `a ${length}-byte signature`);
    }
  });

  it('hashes the signing input as UTF-8, so a character outside Latin-1 never collapses onto a signed byte', () => {
    const a = pair();
    const ka = native!.key(a.spki);
    // Signed: "A.B". Presented: "\u0141.B", whose low byte is 0x41 ("A"): a Latin-1 copy would verify it.
    const signature = es256(a.privateKey, 'A.B');
    assert.equal(native!.verify(ka, 'A.B', signature), true);
    assert.equal(native!.verify(ka, '\u0141.B', signature), false);
    const accented = 'café.thé';
    assert.equal(native!.verify(ka, accented, es256(a.privateKey, Buffer.from(accented, 'utf8'))), true);
    assert.equal(native!.verify(ka, accented, es256(a.privateKey, Buffer.from(accented, 'latin1'))), false);
  });

  it('verifies a long signing input and refuses one over 64 KiB with a stable code', () => {
    const a = pair();
    const ka = native!.key(a.spki);
    const long = 'x'.repeat(20_000);
    assert.equal(native!.verify(ka, long, es256(a.privateKey, long)), true);
    const tooLong = 'x'.repeat(64 * 1024 + 1);
    assert.equal(
      nativeCode(() => native!.verify(ka, tooLong, es256(a.privateKey, tooLong))),
      'ES256_NATIVE_INPUT_TOO_LONG',
    );
  });

  it('takes only a P-256 public key in DER SPKI, whole, and only its own handles', () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'der' });
    const k256 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({
      type: 'spki',
      format: 'der',
    });
    const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' });
    const a = pair();
    const pkcs8 = a.privateKey.export({ type: 'pkcs8', format: 'der' });
    for (const [name, der] of Object.entries({ p384, k256, ed, rsa, pkcs8 })) {
      assert.equal(
        nativeCode(() => native!.key(der)),
        'ES256_NATIVE_KEY',
        name,
      );
    }
    assert.equal(
      nativeCode(() => native!.key(Buffer.concat([a.spki, Buffer.from([0])]))),
      'ES256_NATIVE_KEY',
    );
    assert.equal(
      nativeCode(() => native!.key(a.spki.subarray(0, a.spki.length - 1))),
      'ES256_NATIVE_KEY',
    );
    assert.equal(
      nativeCode(() => native!.key(Buffer.alloc(0))),
      'ES256_NATIVE_KEY',
    );
    // A point off the curve: the last coordinate byte changed.
    const offCurve = Buffer.from(a.spki);
    offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] ?? 0) ^ 1;
    assert.equal(
      nativeCode(() => native!.key(offCurve)),
      'ES256_NATIVE_KEY',
    );
    assert.equal(
      nativeCode(() => native!.key('not bytes' as unknown as Uint8Array)),
      'ES256_NATIVE_ARGUMENT',
    );
    const signature = es256(a.privateKey, 'a.b');
    for (const handle of [{}, [], null, 'key', a.spki]) {
      assert.equal(
        nativeCode(() => native!.verify(handle as object, 'a.b', signature)),
        'ES256_NATIVE_ARGUMENT',
      );
    }
    const ka = native!.key(a.spki);
    assert.equal(
      nativeCode(() => native!.verify(ka, Buffer.from('a.b') as never, signature)),
      'ES256_NATIVE_ARGUMENT',
    );
    assert.equal(
      nativeCode(() => native!.verify(ka, 'a.b', Array.from(signature) as never)),
      'ES256_NATIVE_ARGUMENT',
    );
  });

  it("leaves nothing on OpenSSL's error queue for the next caller (node:crypto, Node's TLS) after a refusal", () => {
    // A fresh process: its queue holds only what this test puts there. Before the fix, a signature with r = 0 left
    // "bad signature" queued, and the next node:crypto call (or TLS's SSL_get_error, which then dropped a healthy
    // connection) reported it as its own error.
    const script = `
      const { createRequire } = require('node:module');
      const { createPrivateKey, generateKeyPairSync } = require('node:crypto');
      const native = createRequire(process.cwd() + '/')(${JSON.stringify(NATIVE_ES256_PATH)});
      const codeOf = (fn) => { try { fn(); return 'none'; } catch (e) { return e.code; } };
      const before = codeOf(() => createPrivateKey('not a key'));
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const key = native.key(publicKey.export({ type: 'spki', format: 'der' }));
      const zero = native.verify(key, 'a.b', Buffer.alloc(64));
      const afterSignature = codeOf(() => createPrivateKey('not a key'));
      const refusedKey = codeOf(() => native.key(Buffer.from('30020500', 'hex')));
      const afterKey = codeOf(() => createPrivateKey('not a key'));
      console.log(JSON.stringify({ before, zero, afterSignature, refusedKey, afterKey }));`;
    const run = spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout.trim()) as Record<string, unknown>;
    assert.equal(out.zero, false);
    assert.equal(out.refusedKey, 'ES256_NATIVE_KEY');
    assert.notEqual(out.before, 'none');
    assert.equal(out.afterSignature, out.before, "node:crypto's next error is its own, not the addon's");
    assert.equal(out.afterKey, out.before, "node:crypto's next error is its own, not the addon's");
  });

  it('leaves the verifier refusing a forged action token with TOKEN_SIGNATURE_INVALID', async () => {
    const a = await signer('k1');
    const verifier = new ActionTokenVerifier({
      audience: AUD,
      jwks: { keys: [a.jwk] },
      actions: { 'payment.approve': { level: 'verified' } },
      clock: () => NOW,
    });
    const good = await token(a);
    assert.equal((await verifier.verify(good, 'payment.approve')).operator, 'op_ada');
    const [h, p, sig] = good.split('.') as [string, string, string];
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'op_eve' })).toString('base64url')}.${sig}`;
    await assert.rejects(verifier.verify(forged, 'payment.approve'), (e: unknown) => {
      assert.ok(e instanceof VerificationError);
      assert.equal(e.code, 'TOKEN_SIGNATURE_INVALID');
      return true;
    });
  });
});

describe('without the native addon', () => {
  it('BATON_VERIFIER_NATIVE=0 verifies with node:crypto, says so, and still refuses a forgery', () => {
    const script = `
      import { es256Backend, ActionTokenVerifier } from './index.ts';
      import { AUD, NOW, signer, token } from './test-fixtures.ts';
      const a = await signer('k1');
      const v = new ActionTokenVerifier({ audience: AUD, jwks: { keys: [a.jwk] }, actions: { 'payment.approve': { level: 'verified' } }, clock: () => NOW });
      const good = await token(a);
      const ok = (await v.verify(good, 'payment.approve')).operator;
      const bad = good.slice(0, -2) + (good.endsWith('AA') ? 'BA' : 'AA');
      const refused = await v.verify(bad, 'payment.approve').then(() => 'accepted', (e) => e.code);
      console.log(JSON.stringify({ backend: es256Backend, ok, refused }));`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      env: { ...process.env, BATON_VERIFIER_NATIVE: '0' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout.trim().split('\n').pop()!) as {
      backend: { name: string; reason: string };
      ok: string;
      refused: string;
    };
    assert.deepEqual(out.backend, { name: 'node:crypto', reason: 'BATON_VERIFIER_NATIVE=0' });
    assert.equal(out.ok, 'op_ada');
    assert.equal(out.refused, 'TOKEN_SIGNATURE_INVALID');
  });
});
