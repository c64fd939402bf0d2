import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import {
  type Json,
  type TestBackend,
  type TestConsole,
  assertError,
  httpJson,
  withBackendAndConsole,
} from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

describe('the assurance-token signing key is rotated with overlap', () => {
  let t: TestBackend;
  let console: TestConsole;
  withBackendAndConsole((b, c) => ((t = b), (console = c)));

  it('after an admin rotates it, new tokens carry the new kid and tokens signed before still verify against the JWKS', async () => {
    const { authenticator } = await enrolOperator(t.admin, console);
    const before = (await signIn(console, authenticator)).body as Json;
    const oldToken = before.token as string;
    const oldKid = decodeProtectedHeader(oldToken).kid;

    const rotated = (await t.admin.ok('POST', '/v1/admin/signing-keys/rotate', { key: 'token' })) as Json;
    assert.equal(rotated.previousKid, oldKid);
    assert.notEqual(rotated.kid, oldKid);

    const after = (await signIn(console, authenticator)).body as Json;
    assert.equal(decodeProtectedHeader(after.token as string).kid, rotated.kid);

    // What a downstream app does: fetch the JWKS and verify with it.
    const jwks = (await httpJson(`${t.url}/.well-known/jwks.json`, { method: 'GET' })).body as Json;
    assert.deepEqual(
      jwks.keys.map((k: Json) => k.kid),
      [rotated.kid, oldKid],
    );
    assert.ok(jwks.keys.every((k: Json) => k.d === undefined));
    const keySet = createLocalJWKSet(jwks);
    await jwtVerify(oldToken, keySet);
    await jwtVerify(after.token as string, keySet);

    const events = (await t.admin.ok('GET', '/v1/admin/events?type=admin-action&limit=1000')) as Json;
    const recorded = events.events.find((e: Json) => e.reasons.includes('signing-key-rotated'));
    assert.equal(recorded?.detail.key, 'token');
    assert.equal(recorded?.detail.kid, rotated.kid);
  });

  it('refuses an unknown key name', async () => {
    assertError(
      await t.admin.request('POST', '/v1/admin/signing-keys/rotate', { key: 'database' }),
      400,
      'SCHEMA_INVALID',
    );
  });
});
