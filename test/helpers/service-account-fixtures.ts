import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type KeyObject } from 'jose';
import {
  CLIENT_ASSERTION_TYPE_JWT_BEARER,
  GRANT_CLIENT_CREDENTIALS,
  GRANT_TOKEN_EXCHANGE,
  SERVICE_ENROLMENT_PROOF_AUDIENCE,
} from '../../shared/service-accounts-api.js';
import { sha256Hex } from '../../backend/crypto/secrets.js';
import { httpJson, type HttpResult, type Json, type TestBackend } from './backend-harness.js';

type PrivateKey = CryptoKey | KeyObject;

/** A service as its job holds it once enrolled: its id, the kid Baton gave its key, and the private key. */
export interface EnrolledService {
  id: string;
  kid: string;
  privateKey: PrivateKey;
  /** The enrolment's whole answer (its token endpoint, actions…). */
  answer: Json;
}

/** A service's own ES256 key pair (the public half as the enrolment sends it: kty, crv, x, y). */
export async function serviceKey(): Promise<{ privateKey: PrivateKey; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const { kty, crv, x, y } = await exportJWK(publicKey);
  return { privateKey, publicJwk: { kty, crv, x, y } };
}

/**
 * Enrols a service with its own fresh key: the admin issues a one-time enrolment token for
 * `actions`, the service redeems it with a proof of possession of the key (`nonce` = the token's
 * SHA-256). The policy must already give the service channel those actions.
 */
export async function enrolService(t: TestBackend, name: string, actions: string[]): Promise<EnrolledService> {
  const { token } = (await t.admin.ok('POST', '/v1/admin/service-enrolment-tokens', { name, actions })) as {
    token: string;
  };
  const key = await serviceKey();
  const proof = await new SignJWT({ nonce: sha256Hex(token) })
    .setProtectedHeader({ alg: 'ES256' })
    .setAudience(SERVICE_ENROLMENT_PROOF_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('2m')
    .sign(key.privateKey);
  const enrolled = await httpJson(`${t.url}/v1/services/enrol`, {
    method: 'POST',
    body: JSON.stringify({ token, publicKey: key.publicJwk, proof }),
  });
  assert.equal(enrolled.status, 201, JSON.stringify(enrolled.body));
  return {
    id: enrolled.body.serviceId as string,
    kid: enrolled.body.kid as string,
    privateKey: key.privateKey,
    answer: enrolled.body,
  };
}

/** A `private_key_jwt` client assertion (RFC 7523 §3): iss = sub = the service, aud = the token endpoint, fresh jti. */
export function clientAssertion(service: EnrolledService, tokenEndpoint: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: service.kid })
    .setIssuer(service.id)
    .setSubject(service.id)
    .setAudience(tokenEndpoint)
    .setJti(randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .sign(service.privateKey);
}

/**
 * The service's token request (form-encoded) for one `audience` and `action`, authenticated with a fresh client
 * assertion: client credentials (RFC 6749 §4.4.2), or, with `actorToken` (a human's action token), a token exchange
 * acting for that human (RFC 8693 `actor_token`).
 */
export async function requestServiceToken(
  t: TestBackend,
  service: EnrolledService,
  audience: string,
  action: string,
  actorToken?: string,
): Promise<HttpResult<Json>> {
  const tokenEndpoint = `${t.url}/v1/services/token`;
  return httpJson(tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: actorToken === undefined ? GRANT_CLIENT_CREDENTIALS : GRANT_TOKEN_EXCHANGE,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: await clientAssertion(service, tokenEndpoint),
      audience,
      action,
      ...(actorToken === undefined
        ? {}
        : { actor_token: actorToken, actor_token_type: 'urn:ietf:params:oauth:token-type:access_token' }),
    }).toString(),
  });
}
