import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { encodeCBOR, type CBORType } from '@levischuck/tiny-cbor';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';

/**
 * A software FIDO2 authenticator for tests and benchmarks: it produces the same bytes a security
 * key would (packed-less `none` attestation, ES256 signatures over authenticatorData‖hash(clientData)),
 * and lets a test set each flag, the counter, the origin and the RP ID — which a browser won't.
 */
export interface SoftCredential {
  id: string;
  privateKey: KeyObject;
  userHandle: string;
  rpId: string;
  counter: number;
}

export interface CeremonyOverrides {
  origin?: string;
  rpId?: string;
  userVerified?: boolean;
  userPresent?: boolean;
  backupEligible?: boolean;
  credentialId?: string;
  counter?: number;
  challenge?: string;
  /** clientDataJSON.type to sign instead of the ceremony's own (`webauthn.create` / `webauthn.get`). */
  clientDataType?: string;
}

const FLAG_UP = 0x01;
const FLAG_UV = 0x04;
const FLAG_BE = 0x08;
const FLAG_AT = 0x40;

export class SoftAuthenticator {
  readonly credentials = new Map<string, SoftCredential>();

  constructor(
    readonly origin: string,
    readonly options: {
      aaguid?: string;
      backupEligible?: boolean;
      userVerified?: boolean;
      /** `packed` attestation: self-signed by the credential, or by a batch certificate. */
      attestation?: 'none' | 'self' | { certificate: Buffer; privateKey: KeyObject };
    } = {},
  ) {}

  register(
    options: PublicKeyCredentialCreationOptionsJSON,
    overrides: CeremonyOverrides = {},
  ): RegistrationResponseJSON {
    const rpId = overrides.rpId ?? options.rp.id ?? 'localhost';
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const id = randomBytes(16).toString('base64url');
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
    const idBytes = Buffer.from(id, 'base64url');
    const aaguid = Buffer.from(
      (this.options.aaguid ?? '00000000-0000-0000-0000-000000000000').replace(/-/g, ''),
      'hex',
    );
    const authData = Buffer.concat([
      this.header(rpId, overrides, FLAG_AT, 0),
      aaguid,
      Buffer.from([idBytes.length >> 8, idBytes.length & 0xff]),
      idBytes,
      Buffer.from(cose),
    ]);
    const clientData = this.clientData(
      overrides.clientDataType ?? 'webauthn.create',
      overrides.challenge ?? options.challenge,
      overrides.origin,
    );
    const attestation = this.options.attestation ?? 'none';
    let fmt = 'none';
    let statement = new Map<string, CBORType>();
    if (attestation !== 'none') {
      const signed = Buffer.concat([authData, createHash('sha256').update(clientData).digest()]);
      fmt = 'packed';
      statement = new Map<string, CBORType>([['alg', -7]]);
      if (attestation === 'self') {
        statement.set('sig', sign('sha256', signed, privateKey));
      } else {
        statement.set('sig', sign('sha256', signed, attestation.privateKey));
        statement.set('x5c', [attestation.certificate]);
      }
    }
    const attestationObject = encodeCBOR(
      new Map<string, CBORType>([
        ['fmt', fmt],
        ['attStmt', statement],
        ['authData', authData],
      ]),
    );
    this.credentials.set(id, { id, privateKey, userHandle: options.user.id, rpId, counter: 0 });
    return {
      id,
      rawId: id,
      type: 'public-key',
      response: {
        clientDataJSON: clientData.toString('base64url'),
        attestationObject: Buffer.from(attestationObject).toString('base64url'),
        transports: ['usb'],
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'cross-platform',
    };
  }

  /** Answers a `get()`; picks the first credential allowed (or any, for usernameless sign-in). */
  assert(
    options: PublicKeyCredentialRequestOptionsJSON,
    overrides: CeremonyOverrides = {},
  ): AuthenticationResponseJSON {
    const allowed = options.allowCredentials?.map((c) => c.id);
    const credential =
      overrides.credentialId !== undefined
        ? this.credentials.get(overrides.credentialId)
        : [...this.credentials.values()].find(
            (c) => allowed === undefined || allowed.length === 0 || allowed.includes(c.id),
          );
    if (credential === undefined) throw new Error('SoftAuthenticator: no matching credential');
    credential.counter = overrides.counter ?? credential.counter + 1;
    const authData = this.header(overrides.rpId ?? credential.rpId, overrides, 0, credential.counter);
    const clientData = this.clientData(
      overrides.clientDataType ?? 'webauthn.get',
      overrides.challenge ?? options.challenge,
      overrides.origin,
    );
    const signed = Buffer.concat([authData, createHash('sha256').update(clientData).digest()]);
    const signature = sign('sha256', signed, credential.privateKey); // DER, as authenticators send it
    return {
      id: credential.id,
      rawId: credential.id,
      type: 'public-key',
      response: {
        clientDataJSON: clientData.toString('base64url'),
        authenticatorData: authData.toString('base64url'),
        signature: signature.toString('base64url'),
        userHandle: credential.userHandle,
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'cross-platform',
    };
  }

  private header(rpId: string, overrides: CeremonyOverrides, extraFlags: number, counter: number): Buffer {
    let flags = extraFlags;
    if (overrides.userPresent ?? true) flags |= FLAG_UP;
    if (overrides.userVerified ?? this.options.userVerified ?? true) flags |= FLAG_UV;
    if (overrides.backupEligible ?? this.options.backupEligible ?? false) flags |= FLAG_BE;
    const count = Buffer.alloc(4);
    count.writeUInt32BE(counter >>> 0);
    return Buffer.concat([createHash('sha256').update(rpId).digest(), Buffer.from([flags]), count]);
  }

  private clientData(type: string, challenge: string, origin?: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin: origin ?? this.origin, crossOrigin: false }));
  }
}
