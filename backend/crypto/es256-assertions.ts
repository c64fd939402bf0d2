/**
 * A fast path for the one assertion shape every sign-in and step-up of a device-bound FIDO2 key
 * makes: ES256 (COSE alg -7 on P-256), no extensions, no attested data, the console's own origin.
 * It **accepts only**: when every check below passes it returns what `verifyAuthenticationResponse`
 * (@simplewebauthn/server 14) returns for that response; when any check fails, or the response has
 * any other shape, it returns `undefined` and the caller runs the library, which stays the authority
 * for every refusal and its message (so each refusal keeps its code). ADR 0013 says why and how it
 * is kept equal to the library (`es256-assertions.test.ts` compares the two on valid and mutated
 * responses).
 *
 * What it saves, per assertion: the library decodes the credential's COSE key (CBOR), imports it
 * into WebCrypto, parses the signature's ASN.1 and re-encodes it, and hashes through WebCrypto's
 * promise jobs, every time. Here a credential's key is decoded and imported once (a bounded cache keyed
 * by the key's bytes: the same bytes always mean the same key), the DER signature goes to OpenSSL
 * as it came, and the ECDSA check runs on libuv's thread pool (`crypto.verify` with a callback), as
 * WebCrypto's does, so the event loop only parses.
 *
 * Each check mirrors the library's, in its terms (the line after each says which):
 * - `id` non-empty and equal to `rawId`, `type` "public-key"; `clientDataJSON`, `authenticatorData`
 *   and `signature` strings of the base64url alphabet without padding; `userHandle` absent or a
 *   string (the library: the same checks, with padding allowed: padded input goes to the library);
 * - clientDataJSON: ASCII JSON whose `type` is "webauthn.get", `challenge` the one issued, `origin`
 *   one of the pinned origins, no `crossOrigin`, `topOrigin` or `tokenBinding` (those, and anything
 *   the library would look further into, go to the library);
 * - authenticatorData: exactly 37 bytes (no attested credential data, no extensions: flags AT and ED
 *   clear), the RP ID's SHA-256, user presence, user verification when required, backup state only
 *   with backup eligibility (the library's `parseBackupFlags` refuses the other), and the counter rule
 *   with the counter the caller passes (the library's, same formula);
 * - the credential key: COSE EC2 (kty 2), alg -7, crv P-256, 32-byte x and y, a point on the curve;
 * - the signature: ECDSA P-256 with SHA-256 over authenticatorData ‖ SHA-256(clientDataJSON), in
 *   strict DER (OpenSSL's own parse; a signature the library would read more loosely goes to it).
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { isAscii } from 'node:buffer';
import type { AuthenticationResponseJSON, WebAuthnCredential } from '@simplewebauthn/server';
import { cose, decodeCredentialPublicKey } from '@simplewebauthn/server/helpers';

/** What the library's `authenticationInfo` holds for the responses this path accepts. */
export interface Es256AssertionInfo {
  newCounter: number;
  credentialID: string;
  userVerified: boolean;
  credentialDeviceType: 'singleDevice' | 'multiDevice';
  credentialBackedUp: boolean;
  authenticatorExtensionResults: undefined;
  origin: string;
  rpID: string;
}

/** Credential keys kept imported; past this the oldest is dropped (a drop costs one decode + import). */
export const KEY_CACHE_SIZE = 10_000;

const BASE64URL = /^[A-Za-z0-9_-]*$/;
/** base64url of 37 bytes, unpadded. */
const AUTH_DATA_CHARS = 50;
const AUTH_DATA_BYTES = 37;
const FLAG_UP = 0x01;
const FLAG_UV = 0x04;
const FLAG_BE = 0x08;
const FLAG_BS = 0x10;
const FLAG_AT = 0x40;
const FLAG_ED = 0x80;

export class Es256Assertions {
  private readonly rpIdHash: Buffer;
  /** Key bytes (latin1) → the imported key, or null: not a key this path verifies. */
  private readonly keys = new Map<string, KeyObject | null>();
  /** Responses this path decided (accepted), and those it left to the library. */
  readonly stats = { accepted: 0, deferred: 0 };

  constructor(
    private readonly rpId: string,
    private readonly origins: readonly string[],
  ) {
    this.rpIdHash = createHash('sha256').update(rpId).digest();
  }

  /**
   * The library's `authenticationInfo` when the response verifies on this path; `undefined` when the
   * library must decide (a refusal, or a shape this path does not take). Never throws for bad input.
   */
  async verify(
    response: AuthenticationResponseJSON,
    expectedChallenge: string,
    credential: Pick<WebAuthnCredential, 'id' | 'publicKey' | 'counter'>,
    requireUserVerification: boolean,
  ): Promise<Es256AssertionInfo | undefined> {
    let info: Es256AssertionInfo | undefined;
    try {
      info = await this.tryVerify(response, expectedChallenge, credential, requireUserVerification);
    } catch {
      info = undefined; // whatever this path cannot read, the library reads (and refuses in its own words)
    }
    if (info === undefined) this.stats.deferred++;
    else this.stats.accepted++;
    return info;
  }

  private async tryVerify(
    response: AuthenticationResponseJSON,
    expectedChallenge: string,
    credential: Pick<WebAuthnCredential, 'id' | 'publicKey' | 'counter'>,
    requireUserVerification: boolean,
  ): Promise<Es256AssertionInfo | undefined> {
    if (typeof response !== 'object' || response === null) return undefined;
    const { id, rawId, type, response: assertion } = response as Partial<Record<keyof typeof response, unknown>>;
    if (typeof id !== 'string' || id.length === 0 || id !== rawId || type !== 'public-key') return undefined;
    if (typeof assertion !== 'object' || assertion === null) return undefined;
    const { clientDataJSON, authenticatorData, signature, userHandle } = assertion as Partial<
      Record<'clientDataJSON' | 'authenticatorData' | 'signature' | 'userHandle', unknown>
    >;
    if (typeof clientDataJSON !== 'string' || typeof authenticatorData !== 'string') return undefined;
    if (typeof signature !== 'string' || signature.length === 0) return undefined;
    if (userHandle !== undefined && typeof userHandle !== 'string') return undefined;
    if (authenticatorData.length !== AUTH_DATA_CHARS || !BASE64URL.test(authenticatorData)) return undefined;
    if (!BASE64URL.test(clientDataJSON) || !BASE64URL.test(signature)) return undefined;

    const authData = Buffer.from(authenticatorData, 'base64url');
    if (authData.length !== AUTH_DATA_BYTES || !this.rpIdHash.equals(authData.subarray(0, 32))) return undefined;
    const flags = authData[32]!;
    if ((flags & FLAG_UP) === 0 || (flags & (FLAG_AT | FLAG_ED)) !== 0) return undefined;
    if (requireUserVerification && (flags & FLAG_UV) === 0) return undefined;
    const backupEligible = (flags & FLAG_BE) !== 0;
    const backedUp = (flags & FLAG_BS) !== 0;
    if (backedUp && !backupEligible) return undefined;
    const counter = authData.readUInt32BE(33);
    if ((counter > 0 || credential.counter > 0) && counter <= credential.counter) return undefined;

    const clientBytes = Buffer.from(clientDataJSON, 'base64url');
    if (!isAscii(clientBytes)) return undefined;
    let client: unknown;
    try {
      client = JSON.parse(clientBytes.toString('latin1'));
    } catch {
      return undefined;
    }
    if (typeof client !== 'object' || client === null) return undefined;
    const facts = client as Record<string, unknown>;
    if (facts.type !== 'webauthn.get' || facts.challenge !== expectedChallenge) return undefined;
    const origin = facts.origin;
    if (typeof origin !== 'string' || !this.origins.includes(origin)) return undefined;
    if (facts.crossOrigin || facts.topOrigin || facts.tokenBinding) return undefined;

    const key = this.keyFor(credential.publicKey);
    if (key === null) return undefined;
    const signed = Buffer.concat([authData, createHash('sha256').update(clientBytes).digest()]);
    const der = Buffer.from(signature, 'base64url');
    const good = await new Promise<boolean>((resolve) => {
      try {
        verify('sha256', signed, key, der, (error, ok) => resolve(error === null && ok));
      } catch {
        resolve(false);
      }
    });
    if (!good) return undefined;
    return {
      newCounter: counter,
      credentialID: credential.id,
      userVerified: (flags & FLAG_UV) !== 0,
      credentialDeviceType: backupEligible ? 'multiDevice' : 'singleDevice',
      credentialBackedUp: backedUp,
      authenticatorExtensionResults: undefined,
      origin,
      rpID: this.rpId,
    };
  }

  /** The credential's key imported once, or null when it is not an ES256 P-256 key this path verifies. */
  private keyFor(publicKey: Uint8Array): KeyObject | null {
    if (!(publicKey instanceof Uint8Array)) return null;
    const cacheKey = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('latin1');
    const cached = this.keys.get(cacheKey);
    if (cached !== undefined) return cached;
    const key = importEs256(publicKey);
    if (this.keys.size >= KEY_CACHE_SIZE) {
      const oldest = this.keys.keys().next();
      if (oldest.done !== true) this.keys.delete(oldest.value);
    }
    this.keys.set(cacheKey, key);
    return key;
  }
}

function importEs256(publicKey: Uint8Array): KeyObject | null {
  try {
    const decoded = decodeCredentialPublicKey(new Uint8Array(publicKey));
    if (!cose.isCOSEPublicKeyEC2(decoded)) return null;
    if (decoded.get(cose.COSEKEYS.alg) !== cose.COSEALG.ES256) return null;
    if (decoded.get(cose.COSEKEYS.crv) !== cose.COSECRV.P256) return null;
    const x = decoded.get(cose.COSEKEYS.x);
    const y = decoded.get(cose.COSEKEYS.y);
    if (!(x instanceof Uint8Array) || !(y instanceof Uint8Array) || x.length !== 32 || y.length !== 32) return null;
    return createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: Buffer.from(x).toString('base64url'),
        y: Buffer.from(y).toString('base64url'),
      },
      format: 'jwk',
    });
  } catch {
    return null;
  }
}
