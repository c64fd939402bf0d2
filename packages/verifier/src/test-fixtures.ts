/**
 * The verifier's tests' fixtures (not part of the library's exports): an app audience, a fixed clock,
 * ES256 signers with their public JWK, action tokens as Baton signs them, the refusal of a call, and
 * a JWKS server whose published keys a test changes.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { VerificationError } from './errors.js';

export const AUD = 'urn:bank:teller';
export const NOW = Date.UTC(2026, 11, 4, 12, 0, 0);

export interface Signer {
  key: CryptoKey;
  jwk: JWK;
}

/** A fresh ES256 key pair published under `kid`. */
export async function signer(kid: string): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { key: privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

let serial = 0;

/** A `payment.approve` action token for `op_ada`'s session `ses_1` at `verified`, issued at `at` for 120 s; `claims` override. */
export function token(s: Signer, claims: Record<string, unknown> = {}, at = NOW): Promise<string> {
  const iat = Math.floor(at / 1000);
  return new SignJWT({
    action: 'payment.approve',
    scope: 'payment.approve',
    sid: 'ses_1',
    console: 'con_1',
    channel: 'branch-kiosk',
    level: 'verified',
    acr: 'phr',
    auth_time: iat - 60,
    policy_version: 3,
    ...claims,
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: s.jwk.kid! })
    .setIssuer('urn:baton:backend')
    .setAudience(AUD)
    .setSubject('op_ada')
    .setJti(`jti-${++serial}`)
    .setIssuedAt(iat)
    .setExpirationTime(iat + 120)
    .sign(s.key);
}

/** The VerificationError `promise` rejects with (fails the test if it resolves, or rejects otherwise). */
export async function refusal(promise: Promise<unknown>): Promise<VerificationError> {
  const error = await promise.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof VerificationError, String(error));
  return error;
}

/** A JWKS endpoint on loopback serving `published` (set it to rotate keys), counting its fetches. */
export interface JwksServer {
  url: string;
  published: JWK[];
  fetches: number;
  close(): Promise<void>;
}

export async function jwksServer(): Promise<JwksServer> {
  const jwks: JwksServer = {
    url: '',
    published: [],
    fetches: 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server = createServer((_req, res) => {
    jwks.fetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: jwks.published }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  jwks.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  return jwks;
}
