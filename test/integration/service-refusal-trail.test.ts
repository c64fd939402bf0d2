import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT, type CryptoKey, type KeyObject } from 'jose';
import { DEFAULT_POLICY, type Policy } from '../../shared/policy.js';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GRANT_CLIENT_CREDENTIALS } from '../../shared/service-accounts-api.js';
import { enrolService, serviceKey } from '../helpers/service-account-fixtures.js';
import { UNAUTHENTICATED_REFUSAL_EVENTS } from '../../backend/service-accounts/refusal-trail.js';
import { AddressedClient, type AddressedReply } from '../helpers/addressed-client.js';
import { assertError, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';

type PrivateKey = CryptoKey | KeyObject;

const PAYMENTS = 'urn:bank:payments';
const TOKEN_PATH = '/v1/services/token';

type Reply = AddressedReply;

/** A caller on another machine (its own address), sending form or JSON bodies. */
class Caller extends AddressedClient {
  constructor(port: number, localAddress: string) {
    super(port, localAddress, 4);
  }

  post(path: string, contentType: string, data: string): Promise<Reply> {
    return this.send(path, contentType, data);
  }

  /** A form body, as an OAuth client library sends it; `params` may repeat a name. */
  form(path: string, params: [string, string][]): Promise<Reply> {
    return this.post(path, 'application/x-www-form-urlencoded', new URLSearchParams(params).toString());
  }

  json(path: string, payload: unknown): Promise<Reply> {
    return this.post(path, 'application/json', JSON.stringify(payload));
  }
}

function unknownServiceId(): string {
  return `svc_${randomBytes(16).toString('hex')}`;
}

/**
 * Every refusal at the service endpoints is an event, also of a body that fails its schema; but a
 * caller that never authenticated cannot write one event per request: past its cap its refusals are
 * answered as ever, their events counted instead, and the count goes in its next recorded event.
 */
describe('service endpoints: every refusal an event, and unauthenticated callers cannot flood the trail', () => {
  let t: TestBackend;
  /** The backend's clock runs `offset` ms ahead of real time (past the cap's window without waiting). */
  let offset = 0;
  let tokenEndpoint: string;
  let viewer: { id: string; privateKey: PrivateKey };
  /** The version of the policy the test publishes. */
  let policyVersion: number;
  const callers: Caller[] = [];

  function caller(localAddress: string): Caller {
    const c = new Caller(t.backend.port, localAddress);
    callers.push(c);
    return c;
  }

  /** A client assertion (RFC 7523 §3) on the backend's clock. */
  function assertion(iss: string, privateKey: PrivateKey): Promise<string> {
    const now = Math.floor((Date.now() + offset) / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(iss)
      .setSubject(iss)
      .setAudience(tokenEndpoint)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + 50)
      .sign(privateKey);
  }

  function tokenParams(clientAssertion: string, action = 'customer.view'): [string, string][] {
    return [
      ['grant_type', GRANT_CLIENT_CREDENTIALS],
      ['client_assertion_type', CLIENT_ASSERTION_TYPE_JWT_BEARER],
      ['client_assertion', clientAssertion],
      ['audience', PAYMENTS],
      ['action', action],
    ];
  }

  async function events(type: string): Promise<Json[]> {
    const body = await t.admin.ok('GET', `/v1/admin/events?type=${type}&limit=1000`);
    return body.events as Json[];
  }

  before(async () => {
    t = await startTestBackend({}, { clock: () => Date.now() + offset });
    tokenEndpoint = `${t.url}${TOKEN_PATH}`;
    const current = (await t.admin.ok('GET', '/v1/admin/policy')) as { version: number; policy: Policy };
    const appKey = await serviceKey();
    const policy: Policy = {
      ...DEFAULT_POLICY,
      apps: [
        {
          audience: PAYMENTS,
          name: 'Payments',
          actions: ['customer.view', 'payment.approve'],
          revocationKey: appKey.publicJwk as { kty: 'EC'; crv: 'P-256'; x: string; y: string },
        },
      ],
      service: { actions: { 'customer.view': { actor: 'none' }, 'payment.approve': { actor: 'none' } } },
    };
    policyVersion = (
      (await t.admin.ok('POST', '/v1/admin/policy', { baseVersion: current.version, policy })) as {
        version: number;
      }
    ).version;
    // A service enrolled for customer.view only.
    viewer = await enrolService(t, 'nightly report', ['customer.view']);
  });
  after(async () => {
    for (const c of callers) c.close();
    await t?.stop();
  });

  it('records a token request that fails its schema (or is no JSON) as service-token-refused, with what it claimed', async () => {
    const from = caller('127.0.0.21');
    const claimedJson = unknownServiceId();
    // JSON with a number for the audience.
    const json = await from.json(TOKEN_PATH, {
      grant_type: GRANT_CLIENT_CREDENTIALS,
      client_id: claimedJson,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: 'not-a-jwt',
      audience: 42,
      action: 'customer.view',
    });
    assertError(json, 400, 'SCHEMA_INVALID');
    // A form with client_id given twice (RFC 6749 §3.2): its first value is what the trail names.
    const claimedForm = unknownServiceId();
    const twice = await from.form(TOKEN_PATH, [
      ['client_id', claimedForm],
      ['client_id', unknownServiceId()],
      ...tokenParams('not-a-jwt'),
    ]);
    assertError(twice, 400, 'SCHEMA_INVALID');
    assert.equal(twice.body.error.issues[0].path, 'client_id');
    // A body that is no JSON, and one of another content type.
    assertError(await from.post(TOKEN_PATH, 'application/json', '{"audience":'), 400, 'BAD_JSON');
    const media = await from.post(TOKEN_PATH, 'text/plain', 'audience=x');
    assert.equal(media.body.error.code, 'UNSUPPORTED_MEDIA_TYPE', JSON.stringify(media.body));

    const refused = await events('service-token-refused');
    const ofJson = refused.filter((e) => e.detail.claimedClient === claimedJson);
    assert.equal(ofJson.length, 1, JSON.stringify(refused));
    assert.deepEqual(ofJson[0].subject, {}, 'not authenticated: no service');
    assert.equal(ofJson[0].outcome, 'failure');
    assert.deepEqual(ofJson[0].reasons, ['schema-invalid']);
    assert.deepEqual(ofJson[0].detail, {
      code: 'SCHEMA_INVALID',
      action: 'customer.view',
      audience: null, // not a string
      grantType: GRANT_CLIENT_CREDENTIALS,
      claimedClient: claimedJson,
      unrecordedRefusals: 0,
      policyVersion,
      unrecordedAcrossClients: 0,
    });
    const ofForm = refused.filter((e) => e.detail.claimedClient === claimedForm);
    assert.equal(ofForm.length, 1, JSON.stringify(refused));
    assert.equal(ofForm[0].detail.code, 'SCHEMA_INVALID');
    assert.equal(ofForm[0].detail.audience, PAYMENTS);
    assert.equal(ofForm[0].detail.action, 'customer.view');
    for (const code of ['BAD_JSON', 'UNSUPPORTED_MEDIA_TYPE']) {
      const unread = refused.filter((e) => e.detail.code === code);
      assert.equal(unread.length, 1, `one ${code} event: ${JSON.stringify(refused)}`);
      assert.equal(unread[0].detail.claimedClient, null);
      assert.equal(unread[0].detail.audience, null);
      assert.equal(unread[0].detail.action, null);
      assert.equal(unread[0].detail.grantType, null);
    }
  });

  it('records a key rotation that fails its schema as service-key-rotation-refused', async () => {
    const from = caller('127.0.0.22');
    const claimed = unknownServiceId();
    const r = await from.json(`/v1/services/${claimed}/keys`, {
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: await assertion(claimed, (await serviceKey()).privateKey),
      // no publicKey, no proof
    });
    assertError(r, 400, 'SCHEMA_INVALID');
    const refused = (await events('service-key-rotation-refused')).filter((e) => e.detail.claimedClient === claimed);
    assert.equal(refused.length, 1);
    assert.deepEqual(refused[0].subject, {});
    assert.deepEqual(refused[0].detail, {
      code: 'SCHEMA_INVALID',
      claimedClient: claimed,
      unrecordedRefusals: 0,
      unrecordedAcrossClients: 0,
    });
  });

  it('answers a flood of unknown clients as ever, records the cap, and says in the next event how many it left out', async () => {
    const cap = UNAUTHENTICATED_REFUSAL_EVENTS.perClient;
    const from = caller('127.0.0.23');
    const claimed = unknownServiceId();
    const stranger = await serviceKey();
    const params = tokenParams(await assertion(claimed, stranger.privateKey));
    const replies: Reply[] = [];
    for (let i = 0; i < 30; i++) replies.push(await from.form(TOKEN_PATH, params));
    assertError(replies[0]!, 401, 'SERVICE_UNKNOWN');
    for (const reply of replies) {
      assert.deepEqual(
        { status: reply.status, code: reply.body.error?.code },
        { status: 401, code: 'SERVICE_UNKNOWN' },
        'each refusal answered as the first: no 429',
      );
    }
    const ofFlood = async () =>
      (await events('service-token-refused')).filter((e) => e.detail.claimedClient === claimed);
    const recorded = await ofFlood();
    assert.equal(recorded.length, cap, `the cap's ${cap} events, not 30`);
    assert.ok(recorded.every((e) => e.detail.code === 'SERVICE_UNKNOWN' && e.detail.unrecordedRefusals === 0));

    // Past the window, the client's next refusal is recorded and says how many were not.
    offset += UNAUTHENTICATED_REFUSAL_EVENTS.windowMs + 1000;
    assertError(await from.form(TOKEN_PATH, params), 401, 'SERVICE_UNKNOWN');
    const next = await ofFlood();
    assert.equal(next.length, cap + 1);
    assert.equal(next.at(-1).detail.unrecordedRefusals, 30 - cap);
    assert.equal(next.at(-1).detail.unrecordedAcrossClients, 0, 'the cap for all clients held nothing back');
  });

  it('records every refusal of an enrolled service, even from an address whose unauthenticated cap is spent', async () => {
    const cap = UNAUTHENTICATED_REFUSAL_EVENTS.perClient;
    const from = caller('127.0.0.24');
    const claimed = unknownServiceId();
    const params = tokenParams(await assertion(claimed, (await serviceKey()).privateKey));
    for (let i = 0; i < cap + 5; i++) assertError(await from.form(TOKEN_PATH, params), 401, 'SERVICE_UNKNOWN');
    const unknown = async () =>
      (await events('service-token-refused')).filter((e) => e.detail.claimedClient === claimed).length;
    assert.equal(await unknown(), cap);

    const before = (await events('service-token-refused')).filter((e) => e.subject.service === viewer.id).length;
    for (let i = 0; i < 15; i++) {
      const refused = await from.form(
        TOKEN_PATH,
        tokenParams(await assertion(viewer.id, viewer.privateKey), 'payment.approve'),
      );
      assertError(refused, 403, 'SERVICE_ACTION_NOT_ALLOWED');
    }
    const ofService = (await events('service-token-refused')).filter((e) => e.subject.service === viewer.id);
    assert.equal(ofService.length - before, 15, 'every refusal of the authenticated service is recorded');
    for (const e of ofService) {
      assert.equal(e.detail.code, 'SERVICE_ACTION_NOT_ALLOWED');
      assert.equal(e.detail.policyVersion, policyVersion, 'under which policy it was refused');
      assert.equal(e.detail.claimedClient, undefined);
      assert.equal(e.detail.unrecordedRefusals, undefined, 'no cap, so nothing to count');
    }
    // The address's unauthenticated refusals are still held back; the service still gets its tokens.
    assertError(await from.form(TOKEN_PATH, params), 401, 'SERVICE_UNKNOWN');
    assert.equal(await unknown(), cap);
    const issued = await from.form(TOKEN_PATH, tokenParams(await assertion(viewer.id, viewer.privateKey)));
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
  });

  it("records every replay of a service's signed assertion as the service's, even from an address whose cap is spent", async () => {
    const cap = UNAUTHENTICATED_REFUSAL_EVENTS.perClient;
    const from = caller('127.0.0.25');
    const claimed = unknownServiceId();
    const unknownParams = tokenParams(await assertion(claimed, (await serviceKey()).privateKey));
    for (let i = 0; i < cap + 1; i++) assertError(await from.form(TOKEN_PATH, unknownParams), 401, 'SERVICE_UNKNOWN');
    // One assertion of the service, used once, then replayed (someone who copied it off the wire).
    const copied = tokenParams(await assertion(viewer.id, viewer.privateKey));
    assert.equal((await from.form(TOKEN_PATH, copied)).status, 200);
    const replays = () =>
      events('service-token-refused').then((all) =>
        all.filter((e) => e.subject.service === viewer.id && e.detail.code === 'SERVICE_ASSERTION_REPLAYED'),
      );
    // The service's refused tokens by action, as the Services page shows them.
    const refusedCount = async () => {
      const { services } = (await t.admin.ok('GET', '/v1/admin/services')) as {
        services: { id: string; tokens: { action: string; refused: number }[] }[];
      };
      return services.find((x) => x.id === viewer.id)?.tokens.find((x) => x.action === 'customer.view')?.refused ?? 0;
    };
    const refusedBefore = await refusedCount();
    const before = (await replays()).length;
    for (let i = 0; i < cap + 2; i++)
      assertError(await from.form(TOKEN_PATH, copied), 401, 'SERVICE_ASSERTION_REPLAYED');
    const recorded = await replays();
    assert.equal(recorded.length - before, cap + 2, 'every replay is recorded, and names the service');
    // Recorded, not counted: a copied assertion cannot inflate the service's figures (or add actions to them).
    assert.equal(await refusedCount(), refusedBefore);
    for (const e of recorded) {
      assert.equal(e.detail.claimedClient, undefined, 'the signature proved who it is: nothing merely claimed');
      assert.equal(e.detail.unrecordedRefusals, undefined);
    }
  });
});
