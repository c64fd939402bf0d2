/**
 * Admin API tokens (issue 12), the credential for scripts once the bootstrap token is retired, and
 * the operators' CSV import: over real HTTP, on the suite's engine, as a script and an admin see them.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { kyselyOf } from '../../backend/store/kysely-store.js';
import { AdminBrowser } from '../helpers/admin-session.js';
import { assertError, httpJson, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';

const DAY = 24 * 3600 * 1000;

describe('admin API tokens', () => {
  let t: TestBackend;
  let root: AdminBrowser;
  let now = Date.now();

  const as = (token: string, method: string, path: string, body?: unknown) =>
    httpJson(`${t.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}` },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const issue = async (label: string, scope: 'read' | 'admin', ttlDays = 30) => {
    const result = await root.request('POST', '/v1/admin/api-tokens', { label, scope, ttlDays });
    assert.equal(result.status, 201, JSON.stringify(result.body));
    return result.body as { token: string; apiToken: { id: string; expiresAt: number } };
  };
  /** The token events recorded for a token, oldest first (read by the signed-in admin). */
  const uses = async (tokenId: string) => {
    const { events } = (await root.ok('GET', '/v1/admin/events?type=admin-action&limit=1000')) as Json;
    return (events as Json[]).filter((e) => e.detail?.token === tokenId);
  };
  const operatorCount = async () =>
    ((await root.ok('GET', '/v1/admin/operators?limit=1000')) as Json).operators.length as number;

  before(async () => {
    t = await startTestBackend({}, { clock: () => now });
    const first = await t.admin.ok('POST', '/v1/admin/bootstrap', { id: 'root', displayName: 'Root Admin' });
    root = new AdminBrowser(t.url, t.backend.adminOrigin);
    assert.equal((await root.register(first.code as string)).status, 201);
    assert.equal((await root.stepUp()).status, 200);
  });
  after(() => t.stop());

  it('issues a token shown once, stored only as its SHA-256, listed without its secret', async () => {
    const { token, apiToken } = await issue('nightly report', 'read');
    assert.match(token, /^bapi_[A-Za-z0-9_-]{43}$/);
    assert.equal(apiToken.expiresAt, now + 30 * DAY);
    const list = (await root.ok('GET', '/v1/admin/api-tokens')) as Json;
    const listed = (list.tokens as Json[]).find((x) => x.id === apiToken.id);
    assert.equal(listed.label, 'nightly report');
    assert.equal(listed.scope, 'read');
    assert.equal(listed.state, 'active');
    assert.ok(!JSON.stringify(list).includes(token), 'the list never shows a secret');
    const db = kyselyOf(t.backend.services.store);
    assert.ok(db !== undefined);
    const rows = await sql<Json>`SELECT * FROM admin_api_tokens WHERE id = ${apiToken.id}`.execute(db);
    assert.equal(rows.rows[0].token_hash, createHash('sha256').update(token).digest('hex'));
    assert.ok(!JSON.stringify(rows.rows).includes(token.slice(5)), 'the database holds no secret');
  });

  it('lets a read token read, refuses it any change (nothing stored), and records every use', async () => {
    const { token, apiToken } = await issue('dashboard', 'read');
    const before = await operatorCount();
    const page = await as(token, 'GET', '/v1/admin/consoles?limit=5');
    assert.equal(page.status, 200);
    assertError(
      await as(token, 'POST', '/v1/admin/operators', { displayName: 'Sneaky' }),
      403,
      'ADMIN_API_TOKEN_SCOPE',
    );
    assert.equal(await operatorCount(), before);
    const recorded = (await uses(apiToken.id)).filter((e) => e.reasons[0] !== 'api-token-issued');
    assert.deepEqual(
      recorded.map((e) => [e.outcome, e.reasons, e.detail.method, e.detail.path, e.detail.actor]),
      [
        ['success', ['api-token-used'], 'GET', '/v1/admin/consoles', `api-token:${apiToken.id}`],
        [
          'failure',
          ['api-token-refused', 'admin-api-token-scope'],
          'POST',
          '/v1/admin/operators',
          `api-token:${apiToken.id}`,
        ],
      ],
    );
    const listed = ((await root.ok('GET', '/v1/admin/api-tokens')) as Json).tokens.find(
      (x: Json) => x.id === apiToken.id,
    );
    assert.equal(listed.uses, 1);
    assert.equal(listed.lastUsedAt, now);
  });

  it('lets an admin token act, as itself, but never hand over the keys', async () => {
    const { token, apiToken } = await issue('provisioning script', 'admin');
    const made = await as(token, 'POST', '/v1/admin/operators', { displayName: 'Scripted Teller', roles: ['teller'] });
    assert.equal(made.status, 201);
    const { events } = (await root.ok('GET', '/v1/admin/events?type=operator-created&limit=1000')) as Json;
    assert.equal((events as Json[]).at(-1).detail.actor, `api-token:${apiToken.id}`);
    const before = await operatorCount();
    assertError(
      await as(token, 'POST', '/v1/admin/operators', { displayName: 'Shadow Admin', roles: ['admin'] }),
      403,
      'ADMIN_API_TOKEN_SCOPE',
    );
    assertError(
      await as(token, 'POST', '/v1/admin/api-tokens', { label: 'more', scope: 'admin' }),
      403,
      'ADMIN_API_TOKEN_SCOPE',
    );
    assertError(await as(token, 'POST', '/v1/admin/bootstrap', { displayName: 'X' }), 403, 'ADMIN_API_TOKEN_SCOPE');
    assertError(
      await as(token, 'PUT', `/v1/admin/operators/${made.body.operator.id as string}/roles`, { roles: ['admin'] }),
      403,
      'ADMIN_API_TOKEN_SCOPE',
    );
    assert.equal(await operatorCount(), before);
    const tokens = ((await root.ok('GET', '/v1/admin/api-tokens')) as Json).tokens as Json[];
    assert.equal(tokens.filter((x) => x.label === 'more').length, 0);
  });

  it('refuses a revoked token and an expired one with their own codes, each refusal recorded', async () => {
    const revoked = await issue('old laptop', 'admin');
    assert.equal((await as(revoked.token, 'GET', '/v1/admin/sessions')).status, 200);
    const answer = await root.ok('POST', `/v1/admin/api-tokens/${revoked.apiToken.id}/revoke`, {
      reason: 'laptop lost',
    });
    assert.equal(answer.apiToken.state, 'revoked');
    assertError(await as(revoked.token, 'GET', '/v1/admin/sessions'), 401, 'ADMIN_API_TOKEN_REVOKED');

    const short = await issue('one-day job', 'read', 1);
    assert.equal((await as(short.token, 'GET', '/v1/admin/policy')).status, 200);
    now += DAY + 1;
    assertError(await as(short.token, 'GET', '/v1/admin/policy'), 401, 'ADMIN_API_TOKEN_EXPIRED');
    assertError(
      await as('bapi_notatokenatallxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 'GET', '/v1/admin/policy'),
      401,
      'ADMIN_AUTH_INVALID',
    );
    // The admin session is past its 12 hours too: the checks below sign in again.
    assert.equal((await root.signIn()).status, 200);
    assert.deepEqual(
      (await uses(revoked.apiToken.id)).map((e) => e.reasons.at(-1)),
      ['api-token-issued', 'api-token-used', 'api-token-revoked', 'admin-api-token-revoked'],
    );
    assert.deepEqual(
      (await uses(short.apiToken.id)).map((e) => e.reasons.at(-1)),
      ['api-token-issued', 'api-token-used', 'admin-api-token-expired'],
    );
    const states = ((await root.ok('GET', '/v1/admin/api-tokens')) as Json).tokens as Json[];
    assert.equal(states.find((x) => x.id === short.apiToken.id).state, 'expired');
  });

  it('is issued and revoked only by an admin with a fresh step-up', async () => {
    now += 10 * 60 * 1000; // the step-up of the sign-in is older than 5 minutes now
    assertError(
      await root.request('POST', '/v1/admin/api-tokens', { label: 'late', scope: 'read' }),
      403,
      'ADMIN_STEP_UP_REQUIRED',
    );
    assert.equal((await root.stepUp()).status, 200);
    assertError(
      await root.request('POST', '/v1/admin/api-tokens', { label: 'x', scope: 'everything' }),
      400,
      'SCHEMA_INVALID',
    );
  });
});

describe('operators from CSV', () => {
  let t: TestBackend;
  const importCsv = (csv: string, dryRun: boolean) =>
    t.admin.request('POST', '/v1/admin/operators/import', { csv, dryRun });
  const count = async () => ((await t.admin.ok('GET', '/v1/admin/operators')) as Json).operators.length as number;

  before(async () => {
    t = await startTestBackend();
    await t.admin.ok('POST', '/v1/admin/operators', { id: 'op_taken', displayName: 'Already Here', roles: [] });
  });
  after(() => t.stop());

  const bad = [
    'displayName,roles,id',
    'Ada Lovelace,teller,op_ada',
    ',teller,op_blank',
    'Bob Builder,Teller!,op_bob',
    'Carol,teller,op_ada',
    'Dan,teller,op_taken',
    'Eve,teller',
    'Frank,teller;supervisor,bad id with spaces',
  ].join('\n');

  it('a dry run names each row in error and stores nothing', async () => {
    const before = await count();
    const result = await importCsv(bad, true);
    assert.equal(result.status, 200);
    assert.equal(result.body.rows, 7);
    assert.equal(result.body.created, 0);
    assert.deepEqual(
      (result.body.errors as Json[]).map((e) => [e.row, e.field]),
      [
        [3, 'displayName'],
        [4, 'roles'],
        [5, 'id'],
        [6, 'id'],
        [7, 'row'],
        [8, 'id'],
      ],
    );
    assert.match(String(result.body.errors[2].message), /already used on line 2/);
    assert.match(String(result.body.errors[3].message), /already exists/);
    assert.equal(await count(), before);
  });

  it('an import with any row in error stores nothing and says which rows', async () => {
    const before = await count();
    const result = await importCsv(bad, false);
    assertError(result, 400, 'OPERATOR_IMPORT_INVALID');
    assert.deepEqual(
      (result.body.error.issues as Json[]).map((i) => i.path),
      ['row 3: displayName', 'row 4: roles', 'row 5: id', 'row 6: id', 'row 7: row', 'row 8: id'],
    );
    assert.equal(await count(), before);
    assertError(await importCsv('name,role\nAda,teller', true), 400, 'OPERATOR_IMPORT_INVALID');
    assertError(await importCsv('displayName,roles\n"Ada,teller', true), 400, 'OPERATOR_IMPORT_INVALID');
  });

  it('imports a clean file whole: quoted names, CRLF, roles separated by semicolons, generated ids', async () => {
    const csv = 'roles,displayName\r\n"teller;supervisor","Okafor, Chidi"\r\nteller,"Zoë ""Z"" Quinn"\r\n\r\n';
    const result = await importCsv(csv, false);
    assert.equal(result.status, 201, JSON.stringify(result.body));
    assert.equal(result.body.created, 2);
    const found = (await t.admin.ok('GET', '/v1/admin/operators?q=okafor')) as Json;
    assert.deepEqual(
      (found.operators as Json[]).map((o) => [o.displayName, o.roles]),
      [['Okafor, Chidi', ['teller', 'supervisor']]],
    );
    const zoe = (await t.admin.ok('GET', '/v1/admin/operators?q=quinn')) as Json;
    assert.equal(zoe.operators[0].displayName, 'Zoë "Z" Quinn');
  });
});
