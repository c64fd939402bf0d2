import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { BatonError } from '../../shared/errors.js';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import {
  CLIENT_ASSERTION_TYPE_JWT_BEARER,
  GRANT_CLIENT_CREDENTIALS,
  SERVICE_ENROLMENT_PROOF_AUDIENCE,
  SERVICE_KEY_ROTATION_PROOF_AUDIENCE,
  type ServicePublicJwk,
} from '../../shared/service-accounts-api.js';
import { sha256Hex } from '../../backend/crypto/secrets.js';
import { ServiceAccounts } from '../../backend/service-accounts/service-accounts.js';
import type { EventLog } from '../../backend/services/event-log.js';
import { assertError, httpJson, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';

const PAYMENTS = 'urn:bank:payments';

interface Key {
  privateKey: CryptoKey;
  publicJwk: ServicePublicJwk;
}

async function newKey(): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk: JWK = await exportJWK(publicKey);
  return { privateKey, publicJwk: { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! } };
}

/**
 * Key rotation by a service (service-accounts.ts `rotateKey`): two rotations of the same service at
 * once leave it exactly one current key (the rotation whose signing key the other retired is refused),
 * and every refused rotation is an event an auditor sees. A second `ServiceAccounts` on the same
 * store plays a second node whose unit of work is held at a chosen point.
 */
describe('service accounts: key rotation under concurrency, and its refusals recorded', () => {
  let t: TestBackend;
  let tokenEndpoint: string;

  /** This service's key-rotation endpoint, as the enrolment names it: a rotation's assertion is for it alone. */
  const rotationEndpoint = (serviceId: string) => `${t.url}/v1/services/${serviceId}/keys`;
  const assertion = (serviceId: string, key: CryptoKey, aud = tokenEndpoint) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(serviceId)
      .setSubject(serviceId)
      .setAudience(aud)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 50)
      .sign(key);
  };
  const proof = (serviceId: string, key: CryptoKey) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'ES256' })
      .setSubject(serviceId)
      .setAudience(SERVICE_KEY_ROTATION_PROOF_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('2m')
      .sign(key);
  const rotationBody = async (serviceId: string, signer: CryptoKey, next: Key, aud = rotationEndpoint(serviceId)) => ({
    client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
    client_assertion: await assertion(serviceId, signer, aud),
    publicKey: next.publicJwk,
    proof: await proof(serviceId, next.privateKey),
  });
  /** The rotation over HTTP, as the service sends it. */
  const rotate = async (serviceId: string, signer: CryptoKey, next: Key) =>
    httpJson(`${t.url}/v1/services/${serviceId}/keys`, {
      method: 'POST',
      body: JSON.stringify(await rotationBody(serviceId, signer, next)),
    });
  const tokenRequest = async (serviceId: string, key: CryptoKey) =>
    httpJson(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: GRANT_CLIENT_CREDENTIALS,
        client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
        client_assertion: await assertion(serviceId, key),
        audience: PAYMENTS,
        action: 'customer.view',
      }).toString(),
    });

  async function enrol(): Promise<{ id: string; key: Key }> {
    const { token } = (await t.admin.ok('POST', '/v1/admin/service-enrolment-tokens', {
      name: 'rotation test',
      actions: ['customer.view'],
    })) as { token: string };
    const key = await newKey();
    const enrolProof = await new SignJWT({ nonce: sha256Hex(token) })
      .setProtectedHeader({ alg: 'ES256' })
      .setAudience(SERVICE_ENROLMENT_PROOF_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('2m')
      .sign(key.privateKey);
    const r = await httpJson(`${t.url}/v1/services/enrol`, {
      method: 'POST',
      body: JSON.stringify({ token, publicKey: key.publicJwk, proof: enrolProof }),
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.keyRotationEndpoint, rotationEndpoint(r.body.serviceId as string));
    return { id: r.body.serviceId as string, key };
  }

  /** The kids of the service's current keys, as the admin API lists them. */
  async function currentKids(serviceId: string): Promise<string[]> {
    const { services } = (await t.admin.ok('GET', '/v1/admin/services')) as {
      services: { id: string; keys: { kid: string; retiredAt: number | null }[] }[];
    };
    const service = services.find((s) => s.id === serviceId);
    assert.ok(service);
    return service.keys.filter((k) => k.retiredAt === null).map((k) => k.kid);
  }

  async function rotationRefusals(serviceId: string): Promise<Json[]> {
    const body = await t.admin.ok('GET', '/v1/admin/events?type=service-key-rotation-refused&limit=1000');
    return (body.events as Json[]).filter(
      (e) => e.subject.service === serviceId || e.detail.claimedClient === serviceId,
    );
  }

  /**
   * A second node: its next unit of work runs `before` first (`where: 'before'`: after the rotation's
   * reads outside the unit), or runs `during` after its body but before its commit (`where: 'inside'`).
   */
  function secondNode() {
    const b = t.backend;
    const state: { hook: (() => Promise<unknown>) | undefined; where: 'before' | 'inside' } = {
      hook: undefined,
      where: 'before',
    };
    const take = () => {
      const hook = state.hook;
      state.hook = undefined;
      return hook;
    };
    const events = new Proxy(b.events, {
      get(target, p) {
        const v = (target as unknown as Record<string | symbol, unknown>)[p];
        if (p !== 'atomically') return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        return async (fn: (uow: unknown) => Promise<unknown>) => {
          if (state.where === 'before') {
            const hook = take();
            if (hook !== undefined) await hook();
            return target.atomically(fn as Parameters<EventLog['atomically']>[0]);
          }
          return target.atomically(async (uow) => {
            const result = await fn(uow);
            const hook = take();
            if (hook !== undefined) await hook();
            return result;
          });
        };
      },
    });
    const node = new ServiceAccounts({
      store: b.store,
      events,
      clock: Date.now,
      policy: () => b.policies.version,
      signer: b.services.actionTokens.issuer,
    });
    return { node, state };
  }

  /** Node B's rotation: its answer as the route would give it (200, or the error's code). */
  async function rotateOnB(node: ServiceAccounts, serviceId: string, signer: CryptoKey, next: Key) {
    try {
      const r = await node.rotateKey(
        serviceId,
        await rotationBody(serviceId, signer, next),
        [rotationEndpoint(serviceId)],
        '127.0.0.1',
      );
      return { status: 200, kid: r.kid };
    } catch (error) {
      if (error instanceof BatonError) return { status: error.status, code: error.code };
      throw error;
    }
  }

  before(async () => {
    t = await startTestBackend();
    tokenEndpoint = `${t.url}/v1/services/token`;
    const appKey = await newKey();
    const current = (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number };
    const policy: Policy = {
      ...DEFAULT_POLICY,
      apps: [{ audience: PAYMENTS, name: 'Payments', actions: ['customer.view'], revocationKey: appKey.publicJwk }],
      service: { tokenTtlSeconds: 120, actions: { 'customer.view': { actor: 'none' } } },
    };
    await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy });
  });
  after(() => t.stop());

  it('two rotations at once: one wins, the other (signed with the key the first retired) is refused', async () => {
    const service = await enrol();
    const [first, second] = [await newKey(), await newKey()];
    const { node, state } = secondNode();
    // Node B has authenticated with the old key and read the keys; node A's rotation commits first.
    let a: Awaited<ReturnType<typeof rotate>> | undefined;
    state.where = 'before';
    state.hook = async () => {
      a = await rotate(service.id, service.key.privateKey, first);
    };
    const b = await rotateOnB(node, service.id, service.key.privateKey, second);
    assert.ok(a);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.deepEqual(b, { status: 401, code: 'SERVICE_ASSERTION_SIGNATURE_INVALID' });

    assert.deepEqual(await currentKids(service.id), [a.body.kid]);
    assert.equal((await tokenRequest(service.id, first.privateKey)).status, 200);
    assertError(await tokenRequest(service.id, second.privateKey), 401, 'SERVICE_ASSERTION_SIGNATURE_INVALID');
    const refused = await rotationRefusals(service.id);
    assert.equal(refused.length, 1, JSON.stringify(refused));
    assert.equal(refused[0]!.subject.service, service.id);
    assert.equal(refused[0]!.detail.code, 'SERVICE_ASSERTION_SIGNATURE_INVALID');
    assert.equal(refused[0]!.outcome, 'failure');
  });

  it('two rotations in flight together: the second waits for the first, then is refused (one current key)', async () => {
    const service = await enrol();
    const [first, second] = [await newKey(), await newKey()];
    const { node, state } = secondNode();
    // Node B's unit has inserted its key and retired the old one, not committed; node A's rotation
    // starts then (on PostgreSQL it reaches its own unit while B's is open).
    let a: ReturnType<typeof rotate> | undefined;
    state.where = 'inside';
    state.hook = async () => {
      a = rotate(service.id, service.key.privateKey, second);
      await sleep(500);
    };
    const b = await rotateOnB(node, service.id, service.key.privateKey, first);
    assert.ok(a);
    const answerA = await a;
    assert.equal(b.status, 200, JSON.stringify(b));
    assertError(answerA, 401, 'SERVICE_ASSERTION_SIGNATURE_INVALID');

    assert.deepEqual(await currentKids(service.id), [b.kid]);
    assert.equal((await tokenRequest(service.id, first.privateKey)).status, 200);
    assertError(await tokenRequest(service.id, second.privateKey), 401, 'SERVICE_ASSERTION_SIGNATURE_INVALID');
  });

  it("an assertion made for the token endpoint (or Baton's issuer) cannot rotate the key: aud must be this rotation endpoint", async () => {
    const service = await enrol();
    const attacker = await newKey();
    // Whoever holds one unused assertion the service made for a token (a proxy's log, a leaked request)
    // tries to swap in their own key with it, and with the generic audience, and with another service's endpoint.
    for (const aud of [
      tokenEndpoint,
      'urn:baton:backend',
      rotationEndpoint('svc_someone_else'),
      `${t.url}/v1/services`,
    ]) {
      const body = await rotationBody(service.id, service.key.privateKey, attacker, aud);
      const r = await httpJson(rotationEndpoint(service.id), { method: 'POST', body: JSON.stringify(body) });
      assertError(r, 401, 'SERVICE_ASSERTION_AUDIENCE');
    }
    // The service still has its own key only: the attacker's key gets no token, the service's does.
    assert.equal((await currentKids(service.id)).length, 1);
    assertError(await tokenRequest(service.id, attacker.privateKey), 401, 'SERVICE_ASSERTION_SIGNATURE_INVALID');
    assert.equal((await tokenRequest(service.id, service.key.privateKey)).status, 200);
    // Every attempt is in the trail as the service's (its key signed them), with the code.
    const refused = await rotationRefusals(service.id);
    assert.deepEqual(
      refused.map((e) => [e.subject.service, e.detail.code]),
      Array.from({ length: 4 }, () => [service.id, 'SERVICE_ASSERTION_AUDIENCE']),
    );
    // The rotation the service means, for this endpoint, goes through; and its assertion is no token request.
    const next = await newKey();
    const good = await rotationBody(service.id, service.key.privateKey, next);
    const rotated = await httpJson(rotationEndpoint(service.id), { method: 'POST', body: JSON.stringify(good) });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.deepEqual(await currentKids(service.id), [rotated.body.kid]);
    const misused = await httpJson(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: GRANT_CLIENT_CREDENTIALS,
        client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
        client_assertion: await assertion(service.id, next.privateKey, rotationEndpoint(service.id)),
        audience: PAYMENTS,
        action: 'customer.view',
      }).toString(),
    });
    assertError(misused, 401, 'SERVICE_ASSERTION_AUDIENCE');
  });

  it('a rotation signed with a key that is not the service’s is refused and recorded, without the assertion or proof', async () => {
    const service = await enrol();
    const stranger = await newKey();
    const body = await rotationBody(service.id, stranger.privateKey, await newKey());
    const r = await httpJson(`${t.url}/v1/services/${service.id}/keys`, { method: 'POST', body: JSON.stringify(body) });
    assertError(r, 401, 'SERVICE_ASSERTION_SIGNATURE_INVALID');

    const refused = await rotationRefusals(service.id);
    assert.equal(refused.length, 1, JSON.stringify(refused));
    const event = refused[0]!;
    assert.equal(event.outcome, 'failure');
    assert.deepEqual(event.reasons, ['service-assertion-signature-invalid']);
    assert.equal(event.detail.code, 'SERVICE_ASSERTION_SIGNATURE_INVALID');
    assert.equal(event.detail.claimedClient, service.id, 'the unverified iss: the assertion did not verify');
    assert.equal(event.subject.service, undefined, 'not authenticated: the service is only claimed');
    const text = JSON.stringify(event);
    assert.ok(!text.includes(body.client_assertion) && !text.includes(body.proof), 'no secret in the trail');
    // The service's own key still works, and is still its only one.
    assert.equal((await tokenRequest(service.id, service.key.privateKey)).status, 200);
    assert.equal((await currentKids(service.id)).length, 1);
  });
});
