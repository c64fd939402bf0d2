/**
 * The smaller admin lists searched, filtered, sorted and cursor-paged like the estate's (issue 12):
 * service accounts, break-glass grants, Shared Signals streams out and sources in, policy versions, an
 * operator's enrolment codes and suspended passkeys. Each is walked page by page (no gap, no repeat),
 * searched by name, filtered, and refuses bad parameters with a stable code; without paging
 * parameters each answers as before. Real HTTP, the suite's engine.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { kyselyOf } from '../../backend/store/kysely-store.js';
import type { Store } from '../../backend/store/repositories.js';
import {
  consoleRecord,
  operatorRecord,
  passkeyRecord,
  streamRow,
  transmitterRow,
} from '../helpers/admin-estate-seed.js';
import { assertError, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';

const N = 12;
const pad = (i: number) => String(i).padStart(2, '0');

async function seed(store: Store, now: number): Promise<void> {
  const db = kyselyOf(store);
  assert.ok(db !== undefined);
  await store.operators.insert(operatorRecord({ id: 'op_ada', displayName: 'Ada Lovelace', createdAt: now }));
  await store.operators.insert(operatorRecord({ id: 'op_bo', displayName: 'Bo Diddley', createdAt: now }));
  for (const [i, site] of ['Leeds', 'York'].entries()) {
    await store.consoles.insert(consoleRecord({ id: `con_s${i}`, name: `Counter ${i}`, site, enrolledAt: now }));
  }
  const policy = (await store.policies.latest())?.policy;
  assert.ok(policy !== undefined);
  for (let i = 0; i < N; i++) {
    const n = pad(i);
    await db
      .insertInto('services')
      .values({
        id: `svc_${n}`,
        name: i % 3 === 0 ? `payroll export ${n}` : `fraud scorer ${n}`,
        actions: '["payment.approve"]',
        enrolled_at: now - (N - i) * 60_000,
        enrolled_by: 'operator:op_ada',
        last_used_at: null,
        revoked_at: i % 4 === 0 ? now : null,
        revoked_by: i % 4 === 0 ? 'operator:op_ada' : null,
        revoked_reason: i % 4 === 0 ? 'retired' : null,
      })
      .execute();
    await db
      .insertInto('break_glass_grants')
      .values({
        id: `bg_${n}`,
        operator_id: i % 2 === 0 ? 'op_ada' : 'op_bo',
        console_id: `con_s${i % 2}`,
        site: i % 2 === 0 ? 'Leeds' : 'York',
        method: i % 3 === 0 ? 'admin-code' : 'supervisor-tap',
        approved_by: i % 3 === 0 ? 'operator:op_bo' : 'op_bo',
        reason: 'key left at home',
        code_hash: null,
        issued_at: now - (N - i) * 60_000,
        expires_at: now + 3_600_000,
        used_at: i % 5 === 0 ? null : now,
        session_id: i % 5 === 0 ? null : `ses_bg${n}`,
        signed_off_at: i < 4 ? now : null,
        signed_off_by: i < 4 ? 'operator:op_ada' : null,
        sign_off_note: i < 4 ? 'checked' : null,
      })
      .execute();
    await db
      .insertInto('operator_enrolment_codes')
      .values({
        code_hash: `${n}${'ab'.repeat(31)}`,
        operator_id: 'op_ada',
        issued_by: 'operator:op_bo',
        issued_at: now - (N - i) * 60_000,
        expires_at: i % 3 === 0 ? now - 1 : now + 3_600_000,
        used_at: i % 4 === 1 ? now : null,
        credential_id: null,
        revoked_at: null,
      })
      .execute();
    await db
      .insertInto('ssf_transmitters')
      .values(
        transmitterRow({
          id: `tx_${n}`,
          name: i % 2 === 0 ? `Entra ${n}` : `Okta ${n}`,
          issuer: `https://idp${n}.example`,
          created_at: now - (N - i) * 60_000,
          disabled_at: i === 5 ? now : null,
        }),
      )
      .execute();
    await store.policies.insert({
      version: 100 + i,
      policy,
      publishedAt: now - (N - i) * 60_000,
      publishedBy: i % 2 === 0 ? 'operator:op_ada' : 'operator:op_bo',
    });
  }
  for (const [i, name] of ['SIEM north', 'Teller app', 'Fraud desk'].entries()) {
    await db
      .insertInto('ssf_receivers')
      .values({
        id: `rcv_${i}`,
        name,
        audience: `https://rcv${i}.example`,
        token_hash: `rcv-hash-${i}`,
        scopes: '["ssf.read"]',
        created_at: now,
        created_by: 'operator:op_ada',
        revoked_at: null,
        last_used_at: null,
      })
      .execute();
  }
  for (let i = 0; i < 9; i++) {
    await db
      .insertInto('ssf_streams')
      .values(
        streamRow({
          id: `str_${pad(i)}`,
          receiver_id: `rcv_${i % 3}`,
          audience: `https://rcv${i % 3}.example`,
          status: i === 4 ? 'paused' : 'enabled',
          created_at: now - (9 - i) * 60_000,
        }),
      )
      .execute();
  }
  for (let i = 0; i < 7; i++) {
    // Six suspended as possible copies, one not.
    await store.operators.insertCredential(
      passkeyRecord({
        id: `cred_s${i}`,
        operatorId: i < 5 ? 'op_ada' : 'op_bo',
        registeredOnConsole: 'con_s0',
        createdAt: now,
        suspendedAt: i === 6 ? null : now - i * 1000,
        suspendedReason: i === 6 ? null : 'signature counter went back',
      }),
    );
  }
}

describe('the smaller admin lists are searched, filtered, sorted and paged like the others', () => {
  let t: TestBackend;
  const get = async (path: string): Promise<Json> => t.admin.ok('GET', path);

  /** Every row of a list, page by page, following `page.next`. */
  const walk = async (path: string, key: string, limit: number): Promise<Json[]> => {
    const rows: Json[] = [];
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const page: Json = await get(`${path}${sep}limit=${limit}${cursor === null ? '' : `&cursor=${cursor}`}`);
      assert.ok((page[key] as Json[]).length <= limit);
      rows.push(...(page[key] as Json[]));
      cursor = page.page.next as string | null;
    } while (cursor !== null);
    return rows;
  };
  const ids = (rows: Json[], key = 'id') => rows.map((r) => r[key] as string | number);

  before(async () => {
    t = await startTestBackend();
    await seed(t.backend.services.store, Date.now());
  });
  after(() => t.stop());

  it('service accounts: paged by name without a gap or a repeat, searched and filtered by state', async () => {
    const all = await walk('/v1/admin/services?sort=name', 'services', 5);
    assert.equal(all.length, N);
    assert.equal(new Set(ids(all)).size, N);
    const names = all.map((s) => s.name as string);
    assert.deepEqual(names, [...names].sort());
    const payroll = await get('/v1/admin/services?q=PAYROLL&limit=50');
    assert.equal(payroll.total, 4);
    assert.ok((payroll.services as Json[]).every((s) => (s.name as string).startsWith('payroll export')));
    assert.ok(Array.isArray((payroll.services as Json[])[0]?.keys), 'each row is the service view, keys and all');
    assert.equal((await get('/v1/admin/services?state=revoked&limit=50')).total, 3);
    // Without paging parameters: the whole list, as before.
    assert.equal(((await get('/v1/admin/services')).services as Json[]).length, N);
    assertError(await t.admin.request('GET', '/v1/admin/services?sort=actions'), 400, 'ADMIN_SORT_UNKNOWN');
    assertError(await t.admin.request('GET', '/v1/admin/services?state=gone'), 400, 'SCHEMA_INVALID');
  });

  it('break-glass grants: newest first, by operator or site name, awaiting review, with names', async () => {
    const all = await walk('/v1/admin/break-glass', 'grants', 5);
    assert.deepEqual(
      ids(all),
      Array.from({ length: N }, (_, i) => `bg_${pad(N - 1 - i)}`),
    );
    const bo = await get('/v1/admin/break-glass?q=diddley&limit=50');
    assert.equal(bo.total, 6);
    assert.equal(bo.names.operators.op_bo, 'Bo Diddley');
    assert.equal(bo.names.consoles.con_s1.name, 'Counter 1');
    assert.equal((await get('/v1/admin/break-glass?operator=Ada%20Lovelace&state=awaiting&limit=50')).total, 4);
    assert.equal((await get('/v1/admin/break-glass?site=york&used=true&limit=50')).total, 5);
    assert.equal((await get('/v1/admin/break-glass?state=signed-off&limit=50')).total, 4);
    // The old review list without paging parameters: those waiting for review.
    assert.equal(((await get('/v1/admin/break-glass')).grants as Json[]).length, N - 4);
    assertError(await t.admin.request('GET', '/v1/admin/break-glass?limit=0'), 400, 'SCHEMA_INVALID');
    assertError(await t.admin.request('GET', '/v1/admin/break-glass?state=awaiting&all=true'), 400, 'SCHEMA_INVALID');
  });

  it("an operator's enrolment codes: paged, filtered by state, a cursor never carries a code's hash", async () => {
    const all = await walk('/v1/admin/operators/op_ada/enrolment-codes', 'codes', 5);
    assert.equal(all.length, N);
    assert.equal(ids(all)[0], `${pad(N - 1)}${'ab'.repeat(7)}`);
    const page = await get('/v1/admin/operators/op_ada/enrolment-codes?limit=2');
    const cursor = Buffer.from(page.page.next as string, 'base64url').toString('utf8');
    assert.ok(!cursor.includes('ab'.repeat(20)), 'the cursor names the code by its public id only');
    const usable = await get('/v1/admin/operators/op_ada/enrolment-codes?state=usable&limit=50');
    assert.ok((usable.codes as Json[]).every((c) => c.state === 'usable'));
    assert.equal(usable.total, 6);
    assert.equal(usable.names.operators.op_bo, 'Bo Diddley');
    assert.equal((await get('/v1/admin/operators/op_ada/enrolment-codes?q=03&limit=50')).total, 1);
    assert.equal((await get('/v1/admin/operators/op_bo/enrolment-codes?limit=50')).total, 0);
    assertError(await t.admin.request('GET', '/v1/admin/operators/op_ada/enrolment-codes?q=zz'), 400, 'SCHEMA_INVALID');
  });

  it('Shared Signals streams out and sources in: paged, searched by receiver or transmitter name', async () => {
    const streams = await walk('/v1/admin/ssf/streams', 'streams', 4);
    assert.equal(streams.length, 9);
    assert.equal(new Set(ids(streams)).size, 9);
    const teller = await get('/v1/admin/ssf/streams?q=teller%20app&limit=50');
    assert.deepEqual(ids(teller.streams as Json[]).sort(), ['str_01', 'str_04', 'str_07']);
    assert.equal((await get('/v1/admin/ssf/streams?status=paused&limit=50')).total, 1);
    const sources = await walk('/v1/admin/ssf/transmitters?sort=name', 'transmitters', 5);
    assert.equal(sources.length, N);
    assert.equal(sources[0]?.name, 'Entra 00');
    assert.equal((await get('/v1/admin/ssf/transmitters?q=okta&state=enabled&limit=50')).total, 5);
    assertError(await t.admin.request('GET', '/v1/admin/ssf/streams?status=lost'), 400, 'SCHEMA_INVALID');
    assertError(await t.admin.request('GET', '/v1/admin/ssf/transmitters?cursor=bogus!'), 400, 'ADMIN_CURSOR_INVALID');
  });

  it('policy versions and suspended passkeys: paged, searched by who published or whose passkey', async () => {
    const versions = await walk('/v1/admin/policy/versions', 'versions', 5);
    const numbers = ids(versions, 'version') as number[];
    assert.deepEqual(
      numbers,
      [...numbers].sort((a, b) => b - a),
    );
    const byBo = await get('/v1/admin/policy/versions?q=bo%20didd&limit=50');
    assert.equal(byBo.total, N / 2);
    assert.equal(byBo.names.operators.op_bo, 'Bo Diddley');
    assert.ok(byBo.adoption !== undefined);
    assert.equal((await get('/v1/admin/policy/versions?q=105&limit=50')).total, 1);
    const suspended = await walk('/v1/admin/credentials/suspended', 'credentials', 4);
    assert.deepEqual(ids(suspended), ['cred_s0', 'cred_s1', 'cred_s2', 'cred_s3', 'cred_s4', 'cred_s5']);
    const ofBo = await get('/v1/admin/credentials/suspended?q=diddley&limit=50');
    assert.deepEqual(
      (ofBo.credentials as Json[]).map((c) => [c.id, c.operatorName]),
      [['cred_s5', 'Bo Diddley']],
    );
    const other = await get('/v1/admin/credentials/suspended?limit=2');
    assertError(
      await t.admin.request('GET', `/v1/admin/policy/versions?limit=2&cursor=${other.page.next as string}`),
      400,
      'ADMIN_CURSOR_INVALID',
    );
  });
});
