/**
 * What the admin console's pages read instead of whole lists (issue 12): names looked up by the ids a
 * page shows (a console's people, an operator's consoles), the policy's reach counted by the database,
 * a revocation's reach counted without listing its consoles, the consoles of one policy version, and
 * the admin API tokens searched, filtered and paged like every other list. Real HTTP, the suite's engine.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { kyselyOf } from '../../backend/store/kysely-store.js';
import type { Store } from '../../backend/store/repositories.js';
import { consoleRecord, operatorRecord, passkeyRecord, sessionRecord } from '../helpers/admin-estate-seed.js';
import { assertError, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';

const SITES = ['Leeds', 'York', 'Hull'];
const CONSOLES = 60;
const TOKENS = 30;

async function seed(store: Store, now: number): Promise<void> {
  for (let i = 0; i < CONSOLES; i++) {
    const n = String(i).padStart(3, '0');
    await store.consoles.insert(
      consoleRecord({
        id: `con_pg${n}`,
        name: `Teller ${n}`,
        channel: i < 40 ? 'branch-kiosk' : 'contact-centre',
        site: SITES[i % SITES.length] ?? null,
        enrolledAt: now - i * 1000,
        // Ten consoles still run version 0 ("none yet"), the rest version 1.
        policyVersion: i % 6 === 0 ? 0 : 1,
        revokedAt: i === 59 ? now : null,
        revokedReason: i === 59 ? 'stolen' : null,
      }),
    );
  }
  await store.operators.insert(operatorRecord({ id: 'op_zoe', displayName: 'Zoë Quinn', createdAt: now }));
  await store.operators.insertCredential(
    passkeyRecord({ id: 'cred_zoe', operatorId: 'op_zoe', registeredOnConsole: 'con_pg050', createdAt: now }),
  );
  await store.sessions.insert(
    sessionRecord({
      id: 'ses_zoe',
      operatorId: 'op_zoe',
      consoleId: 'con_pg041',
      channel: 'contact-centre',
      credentialId: 'cred_zoe',
      startedAt: now,
    }),
  );
  // Admin API tokens as people issue them over the months: some revoked, some expired.
  const db = kyselyOf(store);
  assert.ok(db !== undefined);
  for (let i = 0; i < TOKENS; i++) {
    const n = String(i).padStart(2, '0');
    await db
      .insertInto('admin_api_tokens')
      .values({
        id: `tok_${n}`,
        token_hash: `hash-${n}`,
        label: i % 3 === 0 ? `nightly report ${n}` : `hr sync ${n}`,
        scope: i % 2 === 0 ? 'read' : 'admin',
        created_by: 'operator:grace',
        created_at: now - (TOKENS - i) * 60_000,
        expires_at: i % 5 === 0 ? now - 1000 : now + 86_400_000,
        last_used_at: null,
        revoked_at: i % 7 === 0 ? now : null,
        revoked_by: i % 7 === 0 ? 'operator:grace' : null,
        revoked_reason: i % 7 === 0 ? 'left the bank' : null,
      })
      .execute();
  }
}

describe('admin pages read pages, never whole lists', () => {
  let t: TestBackend;
  const get = async (path: string): Promise<Json> => t.admin.ok('GET', path);

  before(async () => {
    t = await startTestBackend();
    await seed(t.backend.services.store, Date.now());
  });
  after(() => t.stop());

  it("a console's page names its people, and an operator's page its consoles, by the ids they show", async () => {
    const console = await get('/v1/admin/consoles/con_pg041');
    assert.deepEqual(console.names.operators, { op_zoe: 'Zoë Quinn' });
    const operator = await get('/v1/admin/operators/op_zoe');
    assert.deepEqual(operator.names.consoles, {
      con_pg041: { name: 'Teller 041', site: 'Hull' },
      con_pg050: { name: 'Teller 050', site: 'Hull' },
    });
    assert.deepEqual(operator.names.operators, {});
  });

  it('names the consoles and operators a page shows by their ids, at most 200 of each', async () => {
    const { names } = await get('/v1/admin/names?consoles=con_pg041,con_nobody&operators=op_zoe');
    assert.deepEqual(names, {
      consoles: { con_pg041: { name: 'Teller 041', site: 'Hull' } },
      operators: { op_zoe: 'Zoë Quinn' },
    });
    assert.deepEqual((await get('/v1/admin/names')).names, { consoles: {}, operators: {} });
    const many = Array.from({ length: 201 }, (_, i) => `con_x${i}`).join(',');
    assertError(await t.admin.request('GET', `/v1/admin/names?consoles=${many}`), 400, 'SCHEMA_INVALID');
    assertError(await t.admin.request('GET', '/v1/admin/names?people=op_zoe'), 400, 'SCHEMA_INVALID');
  });

  it("counts the policy's reach per channel and per version, with a few names of each version", async () => {
    const { adoption } = await get('/v1/admin/policy/versions');
    // 59 consoles not revoked: 40 on the kiosks, 19 in the contact centre.
    assert.deepEqual(adoption.byChannel, { 'branch-kiosk': 40, 'contact-centre': 19 });
    assert.deepEqual(
      (adoption.byVersion as Json[]).map((v) => [v.version, v.consoles]),
      [
        [1, 49],
        [0, 10],
      ],
    );
    assert.deepEqual(
      (adoption.byVersion[0].sample as Json[]).map((c) => c.name),
      ['Teller 001', 'Teller 002', 'Teller 003', 'Teller 004', 'Teller 005'],
    );
    assert.equal(adoption.versionsAtLeast, false);
  });

  it('lists the consoles of one policy version, a page at a time, with their number', async () => {
    const v0 = await get('/v1/admin/consoles?policyVersion=0&limit=4');
    assert.equal(v0.total, 10);
    assert.deepEqual(
      (v0.consoles as Json[]).map((c) => c.name),
      ['Teller 000', 'Teller 006', 'Teller 012', 'Teller 018'],
    );
    assert.equal((await get('/v1/admin/consoles?policyVersion=1&state=active&limit=1')).total, 49);
    assert.equal((await get('/v1/admin/consoles?policyVersion=7&limit=1')).total, 0);
    assertError(await t.admin.request('GET', '/v1/admin/consoles?policyVersion=-1'), 400, 'SCHEMA_INVALID');
  });

  it("counts a revocation's reach without listing its consoles (limit=0)", async () => {
    const revoked = await t.admin.ok('POST', '/v1/admin/operators/op_zoe/revoke', { reason: 'test' });
    const counted = await get(`/v1/admin/revocations/${revoked.epoch as number}/deliveries?limit=0`);
    assert.deepEqual(counted.deliveries, []);
    assert.equal(typeof counted.sent, 'number');
    assert.equal(counted.acknowledged, 0);
    assertError(
      await t.admin.request('GET', `/v1/admin/revocations/${revoked.epoch as number}/deliveries?limit=5000`),
      400,
      'SCHEMA_INVALID',
    );
  });

  it('pages the admin API tokens without a gap or a repeat, searched by label and filtered by state and scope', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let first = true;
    do {
      const page: Json = await get(`/v1/admin/api-tokens?limit=7${cursor === null ? '' : `&cursor=${cursor}`}`);
      if (first) assert.equal(page.total, TOKENS);
      first = false;
      seen.push(...(page.tokens as Json[]).map((tok) => tok.id as string));
      cursor = page.page.next as string | null;
    } while (cursor !== null);
    assert.equal(seen.length, TOKENS);
    assert.equal(new Set(seen).size, TOKENS);
    assert.equal(seen[0], 'tok_29'); // newest first
    const nightly = await get('/v1/admin/api-tokens?q=NIGHTLY&limit=50');
    assert.equal(nightly.total, 10);
    assert.ok((nightly.tokens as Json[]).every((tok) => (tok.label as string).startsWith('nightly report')));
    const revoked = await get('/v1/admin/api-tokens?state=revoked&limit=50');
    assert.deepEqual((revoked.tokens as Json[]).map((tok) => tok.id).sort(), [
      'tok_00',
      'tok_07',
      'tok_14',
      'tok_21',
      'tok_28',
    ]);
    const expired = await get('/v1/admin/api-tokens?state=expired&limit=50');
    assert.ok((expired.tokens as Json[]).every((tok) => tok.state === 'expired'));
    assert.equal(expired.total, 5); // tok_05, 10, 15, 20, 25 (tok_00 is revoked)
    const reads = await get('/v1/admin/api-tokens?scope=read&state=active&sort=label&order=asc&limit=50');
    const labels = (reads.tokens as Json[]).map((tok) => tok.label as string);
    assert.deepEqual(labels, [...labels].sort());
    assert.ok((reads.tokens as Json[]).every((tok) => tok.scope === 'read' && tok.state === 'active'));
    assertError(await t.admin.request('GET', '/v1/admin/api-tokens?sort=uses'), 400, 'ADMIN_SORT_UNKNOWN');
    assertError(await t.admin.request('GET', '/v1/admin/api-tokens?state=lost'), 400, 'SCHEMA_INVALID');
  });
});
