import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { CONSOLE_HEADERS, ENROLMENT_CONSOLE_ID, signingInput } from '../../shared/console-auth.js';
import type { P256PublicJwk } from '../../shared/http-api.js';

/**
 * The console's P-256 identity key and the agent's half of request signing (see
 * shared/console-auth.ts). The private key is exported only as PKCS#8 for the OS credential store.
 */
export class ConsoleKey {
  private constructor(private readonly privateKey: KeyObject) {}

  static generate(): ConsoleKey {
    return new ConsoleKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
  }

  static fromPkcs8(der: Uint8Array): ConsoleKey {
    const key = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error('The stored console key is not a P-256 key');
    }
    return new ConsoleKey(key);
  }

  toPkcs8(): Buffer {
    return this.privateKey.export({ format: 'der', type: 'pkcs8' });
  }

  publicJwk(): P256PublicJwk {
    const jwk = this.privateKey.export({ format: 'jwk' });
    return { kty: 'EC', crv: 'P-256', x: String(jwk.x), y: String(jwk.y) };
  }

  /** Headers that prove possession of this key for one request. */
  signRequest(input: {
    consoleId: string | undefined;
    method: string;
    path: string;
    body?: string | Uint8Array;
    now: number;
  }): Record<string, string> {
    const nonce = randomBytes(18).toString('base64url');
    const consoleId = input.consoleId ?? ENROLMENT_CONSOLE_ID;
    const toSign = signingInput({
      method: input.method,
      path: input.path,
      consoleId,
      timestamp: input.now,
      nonce,
      bodySha256: createHash('sha256')
        .update(input.body ?? '')
        .digest('hex'),
    });
    const signature = sign('sha256', Buffer.from(toSign), { key: this.privateKey, dsaEncoding: 'ieee-p1363' });
    return {
      ...(input.consoleId === undefined ? {} : { [CONSOLE_HEADERS.console]: input.consoleId }),
      [CONSOLE_HEADERS.timestamp]: String(input.now),
      [CONSOLE_HEADERS.nonce]: nonce,
      [CONSOLE_HEADERS.signature]: signature.toString('base64url'),
    };
  }
}
