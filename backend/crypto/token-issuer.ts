import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  SignJWT,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  calculateJwkThumbprint,
  type JWK,
  type JWTPayload,
  type CryptoKey,
} from 'jose';
import { LEVEL_PROFILES, type AssuranceLevel } from '../../shared/levels.js';

export const SIGNING_KEY_FILE = 'token-signing-key.json';
export const TOKEN_ISSUER = 'urn:baton:backend';
export const TOKEN_AUDIENCE = 'urn:baton:console';

export interface AssuranceClaims {
  operatorId: string;
  sessionId: string;
  level: AssuranceLevel;
  authTime: number;
  consoleId: string;
  consoleJkt: string;
  channel: string;
  ttlSeconds: number;
}

export interface AssuranceTokenPayload extends JWTPayload {
  sid: string;
  acr: string;
  amr: string[];
  auth_time: number;
  cnf: { jkt: string };
  baton: { level: AssuranceLevel; aal: number; console: string; channel: string };
}

/**
 * Issues short-lived ES256 assurance tokens bound to the console key (RFC 7800 `cnf.jkt`).
 * The signing key lives in the data directory (mode 0600); its public half is served as a JWKS.
 */
export class TokenIssuer {
  private constructor(
    private readonly privateKey: CryptoKey,
    private readonly publicKey: CryptoKey,
    private readonly publicJwk: JWK,
    private readonly clock: () => number,
  ) {}

  static async open(dataDir: string, clock: () => number): Promise<TokenIssuer> {
    const file = join(dataDir, SIGNING_KEY_FILE);
    let privateJwk: JWK;
    if (existsSync(file)) {
      privateJwk = JSON.parse(readFileSync(file, 'utf8')) as JWK;
    } else {
      const pair = await generateKeyPair('ES256', { extractable: true });
      privateJwk = await exportJWK(pair.privateKey);
      privateJwk.kid = await calculateJwkThumbprint(privateJwk);
      writeFileSync(file, JSON.stringify(privateJwk), { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
    }
    const { d: _d, ...publicJwk } = privateJwk;
    const privateKey = (await importJWK(privateJwk, 'ES256')) as CryptoKey;
    const publicKey = (await importJWK(publicJwk, 'ES256')) as CryptoKey;
    return new TokenIssuer(privateKey, publicKey, { ...publicJwk, alg: 'ES256', use: 'sig' }, clock);
  }

  jwks(): { keys: JWK[] } {
    return { keys: [this.publicJwk] };
  }

  async issue(claims: AssuranceClaims): Promise<{ token: string; expiresAt: number }> {
    const profile = LEVEL_PROFILES[claims.level];
    const now = Math.floor(this.clock() / 1000);
    const exp = now + claims.ttlSeconds;
    const token = await new SignJWT({
      sid: claims.sessionId,
      acr: profile.acr,
      amr: [...profile.amr],
      auth_time: Math.floor(claims.authTime / 1000),
      cnf: { jkt: claims.consoleJkt },
      baton: { level: claims.level, aal: profile.aal, console: claims.consoleId, channel: claims.channel },
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: this.publicJwk.kid ?? '' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(claims.operatorId)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .sign(this.privateKey);
    return { token, expiresAt: exp * 1000 };
  }

  async verify(token: string): Promise<AssuranceTokenPayload> {
    const { payload } = await jwtVerify(token, this.publicKey, {
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
      currentDate: new Date(this.clock()),
    });
    return payload as AssuranceTokenPayload;
  }
}
