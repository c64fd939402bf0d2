import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { encodeCBOR, type CBORType } from '@levischuck/tiny-cbor';
import { after, before, describe, it } from 'node:test';
import {
  PQCNotSupportedError,
  SimpleWebAuthnError,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  type WebAuthnCredential,
} from '@simplewebauthn/server';
import { BatonError } from '../../shared/errors.js';
import { webauthnRefusalCode } from '../../shared/webauthn-errors.js';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { VerifyPool, defaultVerifyPoolSize, reviveError, type PoolAuthenticationOpts } from './verify-pool.js';

const ORIGIN = 'http://localhost:8471';
const RP_ID = 'localhost';

/**
 * A software authenticator in the shape test/helpers/soft-authenticator.ts has (that file belongs to
 * the test project, which backend tests cannot import): `none` attestation, ES256 assertions over
 * authenticatorData‖SHA-256(clientDataJSON), the same bytes a security key sends.
 */
class SoftAuthenticator {
  private key: KeyObject | undefined;
  private id = '';
  private counter = 0;

  constructor(private readonly origin: string) {}

  register(options: PublicKeyCredentialCreationOptionsJSON): RegistrationResponseJSON {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.key = privateKey;
    this.id = randomBytes(16).toString('base64url');
    const jwk = publicKey.export({ format: 'jwk' });
    const cose = encodeCBOR(
      new Map<number, number | Uint8Array>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(String(jwk.x), 'base64url')],
        [-3, Buffer.from(String(jwk.y), 'base64url')],
      ]),
    );
    const idBytes = Buffer.from(this.id, 'base64url');
    const authData = Buffer.concat([
      this.header(0x40, 0),
      Buffer.alloc(16),
      Buffer.from([0, idBytes.length]),
      idBytes,
      Buffer.from(cose),
    ]);
    const attestationObject = encodeCBOR(
      new Map<string, CBORType>([
        ['fmt', 'none'],
        ['attStmt', new Map<string, CBORType>()],
        ['authData', authData],
      ]),
    );
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: this.clientData('webauthn.create', options.challenge).toString('base64url'),
        attestationObject: Buffer.from(attestationObject).toString('base64url'),
        transports: ['usb'],
      },
      clientExtensionResults: {},
    };
  }

  assert(options: PublicKeyCredentialRequestOptionsJSON): AuthenticationResponseJSON {
    if (this.key === undefined) throw new Error('register first');
    this.counter++;
    const authData = this.header(0, this.counter);
    const clientData = this.clientData('webauthn.get', options.challenge);
    const signed = Buffer.concat([authData, createHash('sha256').update(clientData).digest()]);
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: clientData.toString('base64url'),
        authenticatorData: authData.toString('base64url'),
        signature: sign('sha256', signed, this.key).toString('base64url'),
      },
      clientExtensionResults: {},
    };
  }

  private header(extraFlags: number, counter: number): Buffer {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(counter);
    // UP | UV
    return Buffer.concat([createHash('sha256').update(RP_ID).digest(), Buffer.from([0x05 | extraFlags]), count]);
  }

  private clientData(type: string, challenge: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin: this.origin, crossOrigin: false }));
  }
}

/** The error classes a caller can name (the library's private ones it cannot). */
const NAMEABLE: unknown[] = [
  Error,
  TypeError,
  RangeError,
  SimpleWebAuthnError,
  PQCNotSupportedError,
  (
    createRequire(fileURLToPath(import.meta.resolve('@simplewebauthn/server')))('@peculiar/asn1-schema') as {
      AsnSchemaValidationError: unknown;
    }
  ).AsnSchemaValidationError,
];

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

async function outcome(promise: Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}

/** The pool's outcome is the in-thread one: same value, or an error of the same class, name, message and code. */
function assertSameOutcome(pool: Outcome, inThread: Outcome): void {
  assert.equal(pool.ok, inThread.ok, `pool ${JSON.stringify(pool)} vs in-thread ${JSON.stringify(inThread)}`);
  if (pool.ok && inThread.ok) {
    assert.deepStrictEqual(pool.value, inThread.value);
    return;
  }
  if (pool.ok || inThread.ok) return;
  const a = pool.error as Error & { code?: unknown };
  const b = inThread.error as Error & { code?: unknown };
  assert.equal(a.constructor.name, b.constructor.name, 'the same error class');
  assert.ok(a instanceof Error);
  assert.equal(a.name, b.name);
  assert.equal(a.message, b.message);
  assert.equal(a.code, b.code);
  assert.deepStrictEqual({ ...a }, { ...b }, 'the same own properties');
  if (NAMEABLE.includes(b.constructor)) {
    assert.equal(Object.getPrototypeOf(a), Object.getPrototypeOf(b), `the very class ${b.constructor.name}`);
    assert.deepStrictEqual(a, b);
  }
  assert.equal(webauthnRefusalCode(a), webauthnRefusalCode(b));
}

describe('verification pool', { timeout: 120_000 }, () => {
  const soft = new SoftAuthenticator(ORIGIN);
  let credential: WebAuthnCredential;
  let pool: VerifyPool;

  async function assertion() {
    const options = await generateAuthenticationOptions({
      rpID: RP_ID,
      allowCredentials: [{ id: credential.id }],
      userVerification: 'required',
    });
    const response: AuthenticationResponseJSON = soft.assert(options);
    const opts: PoolAuthenticationOpts = {
      response,
      expectedChallenge: options.challenge,
      expectedOrigin: [ORIGIN],
      expectedRPID: RP_ID,
      expectedType: 'webauthn.get',
      credential: { ...credential, counter: 0 },
      requireUserVerification: true,
    };
    return opts;
  }

  before(async () => {
    // These tests are about the threads: every job is posted (the in-thread path has its own test).
    pool = new VerifyPool({ size: 2, inlineWhenIdle: false });
    const options = await generateRegistrationOptions({
      rpName: 'Baton',
      rpID: RP_ID,
      userName: 'op-1',
      attestationType: 'none',
      authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
      supportedAlgorithmIDs: [-7, -8, -257],
    });
    const response = soft.register(options);
    const opts = {
      response,
      expectedChallenge: options.challenge,
      expectedOrigin: [ORIGIN],
      expectedRPID: RP_ID,
      expectedType: 'webauthn.create',
      requireUserVerification: true,
      supportedAlgorithmIDs: [-7, -8, -257],
    };
    await pool.ready();
    const inThread = await outcome(verifyRegistrationResponse(opts));
    const pooled = await outcome(pool.verifyRegistration(opts));
    assertSameOutcome(pooled, inThread);
    assert.ok(pooled.ok && inThread.ok);
    const info = (inThread.value as Awaited<ReturnType<typeof verifyRegistrationResponse>>).registrationInfo;
    assert.ok(info);
    credential = info.credential;
    const pooledKey = (pooled.value as Awaited<ReturnType<typeof verifyRegistrationResponse>>).registrationInfo
      ?.credential.publicKey;
    assert.ok(pooledKey instanceof Uint8Array);
  });

  after(async () => {
    await pool.close();
  });

  it('sizes itself to every core but one, at least one', () => {
    assert.equal(defaultVerifyPoolSize(16), 15);
    assert.equal(defaultVerifyPoolSize(2), 1);
    assert.equal(defaultVerifyPoolSize(1), 1);
  });

  it('verifies a real assertion from a software authenticator exactly as the in-thread call does', async () => {
    const opts = await assertion();
    const inThread = await outcome(verifyAuthenticationResponse(opts));
    const pooled = await outcome(pool.verifyAuthentication(opts));
    assert.ok(inThread.ok);
    assertSameOutcome(pooled, inThread);
    assert.equal((pooled as { value: { verified: boolean } }).value.verified, true);
  });

  it('fails a forged signature identically', async () => {
    const opts = await assertion();
    const signature = Buffer.from(opts.response.response.signature, 'base64url');
    // Flip a bit of the last byte (inside the DER integer s, not its framing): well-formed, but wrong.
    signature[signature.length - 1] = (signature[signature.length - 1] ?? 0) ^ 0x01;
    const forged = {
      ...opts,
      response: {
        ...opts.response,
        response: { ...opts.response.response, signature: signature.toString('base64url') },
      },
    };
    const inThread = await outcome(verifyAuthenticationResponse(forged));
    const pooled = await outcome(pool.verifyAuthentication(forged));
    assertSameOutcome(pooled, inThread);
    assert.ok(inThread.ok && !(inThread.value as { verified: boolean }).verified, 'the forgery does not verify');
    // Garbage instead of a signature: the library throws; the pool throws the same.
    const garbage = {
      ...opts,
      response: { ...opts.response, response: { ...opts.response.response, signature: 'AAAA' } },
    };
    assertSameOutcome(
      await outcome(pool.verifyAuthentication(garbage)),
      await outcome(verifyAuthenticationResponse(garbage)),
    );
  });

  it('throws the library’s own errors for a wrong challenge, origin or RP ID, mapped to the same codes', async () => {
    const opts = await assertion();
    const cases: PoolAuthenticationOpts[] = [
      { ...opts, expectedChallenge: 'not-the-challenge' },
      { ...opts, expectedOrigin: ['https://elsewhere.example.internal'] },
      { ...opts, expectedRPID: 'elsewhere.example.internal' },
    ];
    const codes: string[] = [];
    for (const bad of cases) {
      const inThread = await outcome(verifyAuthenticationResponse(bad));
      const pooled = await outcome(pool.verifyAuthentication(bad));
      assert.ok(!inThread.ok);
      assertSameOutcome(pooled, inThread);
      if (!pooled.ok) codes.push(webauthnRefusalCode(pooled.error));
    }
    assert.deepEqual(codes, ['WEBAUTHN_VERIFICATION_FAILED', 'WEBAUTHN_ORIGIN_MISMATCH', 'WEBAUTHN_RP_ID_MISMATCH']);
  });

  it('rebuilds SimpleWebAuthn’s error classes with their codes', () => {
    const revived = reviveError({
      kind: 'SimpleWebAuthnError',
      name: 'SimpleWebAuthnError',
      message: 'no path',
      code: 'CERTIFICATE_PATH_VERIFICATION_FAILED',
      cause: { kind: 'TypeError', name: 'TypeError', message: 'inner' },
    });
    assert.ok(revived instanceof SimpleWebAuthnError);
    assert.deepStrictEqual(
      revived,
      new SimpleWebAuthnError({
        message: 'no path',
        code: 'CERTIFICATE_PATH_VERIFICATION_FAILED',
        cause: new TypeError('inner'),
      }),
    );
    const pqc = reviveError({
      kind: 'PQCNotSupportedError',
      name: 'SimpleWebAuthnError',
      message: 'no ML-DSA',
      code: 'RUNTIME_NO_PQC_SUPPORT',
    });
    assert.ok(pqc instanceof PQCNotSupportedError && pqc instanceof SimpleWebAuthnError);
    assert.equal((pqc as SimpleWebAuthnError).code, 'RUNTIME_NO_PQC_SUPPORT');
    const range = reviveError({ kind: 'RangeError', name: 'RangeError', message: 'x', code: 'ERR_X' });
    assert.ok(range instanceof RangeError);
    assert.equal((range as Error & { code?: string }).code, 'ERR_X');
  });

  it('survives a thread that crashes, running the job it held once more', async () => {
    const single = new VerifyPool({ size: 1, inlineWhenIdle: false });
    try {
      await single.ready();
      const opts = await assertion();
      const expected = await outcome(verifyAuthenticationResponse(opts));
      // The crash reaches the only thread before the job does: the job is run again on its replacement.
      single.crashOneThreadForTests();
      assertSameOutcome(await outcome(single.verifyAuthentication(opts)), expected);
      assert.equal(single.stats.replaced, 1);
      // And the replacement keeps serving.
      const next = await assertion();
      assertSameOutcome(
        await outcome(single.verifyAuthentication(next)),
        await outcome(verifyAuthenticationResponse(next)),
      );
      // An idle thread that dies is replaced too.
      single.crashOneThreadForTests();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const third = await assertion();
      assertSameOutcome(
        await outcome(single.verifyAuthentication(third)),
        await outcome(verifyAuthenticationResponse(third)),
      );
      assert.equal(single.stats.replaced, 2);
    } finally {
      await single.close();
    }
  });

  it('verifies a lone assertion on the event loop and posts one that comes while another is in flight', async () => {
    const mixed = new VerifyPool({ size: 1 });
    try {
      await mixed.ready();
      const [first, second, forged] = await Promise.all([assertion(), assertion(), assertion()]);
      // Alone: in this thread, the library's own result.
      const alone = await outcome(mixed.verifyAuthentication(first));
      assertSameOutcome(alone, await outcome(verifyAuthenticationResponse(first)));
      assert.deepEqual([mixed.stats.inline, mixed.stats.completed], [1, 0]);
      // Two at once: the first runs here, the second goes to the thread; both verify.
      const both = await Promise.all([
        outcome(mixed.verifyAuthentication(await assertion())),
        outcome(mixed.verifyAuthentication(second)),
      ]);
      assert.ok(both.every((r) => r.ok && (r.value as { verified: boolean }).verified));
      assert.deepEqual([mixed.stats.inline, mixed.stats.completed], [2, 1]);
      // A forgery alone is refused in this thread exactly as the library refuses it.
      forged.response.response.signature = 'AAAA';
      assertSameOutcome(
        await outcome(mixed.verifyAuthentication(forged)),
        await outcome(verifyAuthenticationResponse(forged)),
      );
      assert.equal(mixed.stats.inline, 3);
      // Closed: refused, not run here.
      await mixed.close();
      const late = await outcome(mixed.verifyAuthentication(first));
      assert.ok(!late.ok && late.error instanceof BatonError && late.error.code === 'SHUTTING_DOWN');
      assert.equal(mixed.stats.inline, 3);
    } finally {
      await mixed.close();
    }
  });

  it('refuses with BACKEND_BUSY when its queue is full, and SHUTTING_DOWN once closed', async () => {
    const small = new VerifyPool({ size: 1, maxQueue: 2, inlineWhenIdle: false });
    await small.ready();
    const jobs = await Promise.all([assertion(), assertion(), assertion(), assertion()]);
    const results = jobs.map((opts) => outcome(small.verifyAuthentication(opts)));
    const settled = await Promise.all(results);
    assert.deepEqual(
      settled.map((r) => r.ok),
      [true, true, true, false],
    );
    const busy = settled[3];
    assert.ok(busy !== undefined && !busy.ok && busy.error instanceof BatonError);
    assert.equal(busy.error.code, 'BACKEND_BUSY');
    assert.equal(busy.error.status, 503);
    assert.equal(small.stats.refused, 1);
    // Close with work waiting: what waits is refused, what runs finishes.
    const more = await Promise.all([assertion(), assertion(), assertion()]);
    const pending = more.map((opts) => outcome(small.verifyAuthentication(opts)));
    await small.close();
    const after = await Promise.all(pending);
    assert.equal(after[0]?.ok, true, 'the running job finished');
    for (const r of after.slice(1)) {
      assert.ok(!r.ok && r.error instanceof BatonError && r.error.code === 'SHUTTING_DOWN');
    }
    const late = await outcome(small.verifyAuthentication(more[0]!));
    assert.ok(!late.ok && late.error instanceof BatonError && late.error.code === 'SHUTTING_DOWN');
  });
});
