import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { StoredEvent } from '../../shared/events.js';
import { startTestBackend, TestConsole, assertError, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { eventually } from '../helpers/console-stream.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

/**
 * A security reviewer found that what a SCIM directory changes on an operator's account (role changes
 * from group membership, deactivation, reactivation, attribute changes) and an admin unlocking an
 * operator or reinstating a suspended passkey reached the SIEM as Base Event (class 0). Each change is
 * made here as a directory and an admin make it, through the real SCIM endpoints and admin API, and
 * the record checked is the one the real exporter delivered to an HTTP collector: OCSF Account Change
 * (3001) with the activity docs/siem.md names, the operator as `user`, and the whole stored event still
 * under `unmapped.baton`.
 */

const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const OPERATOR_EXT = 'urn:baton:params:scim:schemas:extension:2.0:Operator';

describe('account changes by a SCIM directory or an admin reach the SIEM as OCSF Account Change', () => {
  let t: TestBackend;
  let collector: Server;
  const received = new Map<string, Json>();
  let token = '';
  let directoryId = '';

  before(async () => {
    // The SIEM's HTTP collector, on this host (plain HTTP is allowed to loopback only).
    collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        for (const record of JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json[]) {
          received.set(record.metadata.uid as string, record);
        }
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const { port } = collector.address() as AddressInfo;
    t = await startTestBackend({
      siem: { sinks: [{ name: 'lake', kind: 'http', url: `http://127.0.0.1:${port}/ocsf`, timeoutSeconds: 2 }] },
    });
    const created = (await t.admin.ok('POST', '/v1/admin/scim/directories', {
      name: 'Entra ID (workforce)',
      groupRoles: { 'Branch Tellers': ['teller'] },
    })) as Json;
    token = created.token as string;
    directoryId = created.directory.id as string;
  });
  after(async () => {
    await t?.stop();
    collector.closeAllConnections();
    await new Promise<void>((resolve) => collector.close(() => resolve()));
  });

  async function scim(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
    const response = await fetch(`${t.url}/scim/v2${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/scim+json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as Json) };
  }

  /** The one stored event of this type whose first reason is `reason` and that `match` picks. */
  async function storedEvent(
    type: StoredEvent['type'],
    reason: string,
    match: (e: StoredEvent) => boolean = () => true,
  ): Promise<StoredEvent> {
    const events = (await t.backend.events.query({ type, limit: 1000 })).filter(
      (e) => e.reasons[0] === reason && match(e),
    );
    assert.equal(events.length, 1, `one ${type} ${reason}: ${JSON.stringify(events)}`);
    return events[0]!;
  }

  /** The OCSF record the SIEM's collector received for this stored event. */
  function delivered(event: StoredEvent): Promise<Json> {
    return eventually(() => received.get(event.id), `the SIEM record of ${event.type} ${event.reasons[0] ?? ''}`);
  }

  /** An OCSF Account Change of this activity about the event's operator, Baton's whole event kept. */
  async function assertAccountChange(event: StoredEvent, activity: number, name: string, status = 1): Promise<Json> {
    const record = await delivered(event);
    const what = `${event.type} ${event.reasons.join(',')}`;
    assert.equal(record.class_uid, 3001, what);
    assert.equal(record.class_name, 'Account Change', what);
    assert.equal(record.category_uid, 3, what);
    assert.equal(record.activity_id, activity, what);
    assert.equal(record.activity_name, name, what);
    assert.equal(record.type_uid, 300100 + activity, what);
    assert.equal(record.type_name, `Account Change: ${name}`, what);
    assert.equal(record.status_id, status, what);
    assert.equal(record.metadata.version, '1.4.0', 'activity 12 Unlock is OCSF 1.4');
    assert.equal(record.metadata.sequence, event.cursor);
    assert.ok(event.subject.operator !== undefined, what);
    assert.deepEqual(record.user, { uid: event.subject.operator, type_id: 1, type: 'User' }, what);
    const baton = record.unmapped.baton as Json;
    assert.equal(baton.type, event.type);
    assert.equal(baton.type_uri, `urn:baton:event:${event.type}`);
    assert.deepEqual(baton.reasons, event.reasons);
    assert.deepEqual(baton.subject, event.subject);
    assert.deepEqual(baton.detail, event.detail);
    assert.equal(baton.hash, event.hash);
    return record;
  }

  async function assertBaseEvent(event: StoredEvent): Promise<void> {
    const record = await delivered(event);
    assert.equal(record.class_uid, 0, `${event.type} ${event.reasons.join(',')}`);
    assert.equal(record.type_uid, 99);
    assert.equal(record.activity_name, event.type);
  }

  it('a directory creates, joins to a group, changes, deactivates, reactivates and deletes a User', async () => {
    const created = await scim('POST', '/Users', {
      schemas: [USER],
      userName: 'ada.lovelace@bank.example',
      name: { givenName: 'Ada', familyName: 'Lovelace' },
      externalId: '00u-ada',
      active: true,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const scimId = created.body.id as string;
    const operatorId = created.body[OPERATOR_EXT].operatorId as string;
    const ofUser = (e: StoredEvent) => e.detail?.['scimId'] === scimId;

    const create = await assertAccountChange(
      await storedEvent('scim-provisioning', 'user-created', ofUser),
      1,
      'Create',
    );
    assert.equal(create.user.uid, operatorId);
    assert.equal(create.unmapped.baton.detail.userName, 'ada.lovelace@bank.example');
    assert.equal(create.unmapped.baton.detail.directory, directoryId);

    // Group membership gives a role: the member's operator-updated, with the roles it now has.
    const group = await scim('POST', '/Groups', {
      schemas: [GROUP],
      displayName: 'Branch Tellers',
      members: [{ value: scimId }],
    });
    assert.equal(group.status, 201, JSON.stringify(group.body));
    const joined = await assertAccountChange(
      await storedEvent('scim-provisioning', 'operator-updated', ofUser),
      99,
      'Roles or Name Change',
    );
    assert.equal(joined.unmapped.baton.detail.roles, 'teller');
    // The Group's own event names no operator: it stays a Base Event.
    await assertBaseEvent(
      await storedEvent('scim-provisioning', 'group-created', (e) => e.detail?.['scimId'] === group.body.id),
    );

    // Attribute changes: a PATCH (Entra) and a PUT (Okta) of the User.
    const patched = await scim('PATCH', `/Users/${scimId}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', path: 'externalId', value: '00u-ada-2' }],
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const patch = await assertAccountChange(
      await storedEvent('scim-provisioning', 'user-patched', ofUser),
      99,
      'Attribute Change',
    );
    assert.equal(patch.unmapped.baton.detail.externalId, '00u-ada-2');
    const replaced = await scim('PUT', `/Users/${scimId}`, {
      schemas: [USER],
      userName: 'ada.lovelace@bank.example',
      name: { givenName: 'Ada', familyName: 'King' },
      externalId: '00u-ada-2',
      active: true,
    });
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    await assertAccountChange(await storedEvent('scim-provisioning', 'user-replaced', ofUser), 99, 'Attribute Change');

    // Deactivated: the directory's Disable, then Baton's own (the operator revoked).
    const deactivated = await scim('PATCH', `/Users/${scimId}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', path: 'active', value: false }],
    });
    assert.equal(deactivated.body.active, false);
    const disable = await assertAccountChange(
      await storedEvent('scim-provisioning', 'user-deactivated', ofUser),
      5,
      'Disable',
    );
    assert.equal(disable.user.uid, operatorId);
    assert.equal(disable.unmapped.baton.detail.active, false);
    await assertAccountChange(
      await storedEvent('operator-revoked', 'revoked-by-admin', (e) => e.subject.operator === operatorId),
      5,
      'Disable',
    );

    // Enabled again: a new operator (who enrols a passkey again), the directory's Enable names it.
    const reactivated = await scim('PATCH', `/Users/${scimId}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', path: 'active', value: true }],
    });
    const newOperatorId = reactivated.body[OPERATOR_EXT].operatorId as string;
    assert.notEqual(newOperatorId, operatorId);
    const enable = await assertAccountChange(
      await storedEvent('scim-provisioning', 'user-reactivated', ofUser),
      2,
      'Enable',
    );
    assert.equal(enable.user.uid, newOperatorId);
    const recreated = await assertAccountChange(
      await storedEvent('operator-created', 'scim-provisioned', (e) => e.subject.operator === newOperatorId),
      1,
      'Create',
    );
    assert.equal(recreated.unmapped.baton.detail.previous, operatorId);

    assert.equal((await scim('DELETE', `/Users/${scimId}`)).status, 204);
    const deleted = await assertAccountChange(
      await storedEvent('scim-provisioning', 'user-deleted', ofUser),
      6,
      'Delete',
    );
    assert.equal(deleted.user.uid, newOperatorId);
  });

  it('an admin reinstates a suspended passkey, unlocks an operator and changes roles; other admin actions stay Base Events', async () => {
    const kiosk = await TestConsole.enrol(t.url, t.admin);
    const { operatorId, credentialId, authenticator } = await enrolOperator(t.admin, kiosk, {
      displayName: 'Cora Cloned',
    });
    const ofOperator = (e: StoredEvent) => e.subject.operator === operatorId;

    // A counter regression suspends the passkey (9 Lock); the admin's reinstatement is its Unlock.
    assert.equal((await signIn(kiosk, authenticator, { counter: 10 })).status, 200);
    assertError(await signIn(kiosk, authenticator, { counter: 5 }), 403, 'WEBAUTHN_COUNTER_REGRESSED');
    await assertAccountChange(
      await storedEvent('credential-counter-regressed', 'possible-cloned-authenticator', ofOperator),
      9,
      'Lock',
      2, // the sign-in it refused
    );
    await t.admin.ok('POST', `/v1/admin/credentials/${credentialId}/reinstate`, {
      reason: 'operator still holds the key; the copy was a lab test',
    });
    const reinstated = await assertAccountChange(
      await storedEvent('admin-action', 'credential-reinstated', ofOperator),
      12,
      'Unlock',
    );
    assert.equal(reinstated.unmapped.baton.subject.credential, credentialId);
    assert.equal(reinstated.unmapped.baton.detail.reason, 'operator still holds the key; the copy was a lab test');

    // A failed attempt counts against the operator; the admin clears it.
    const { options } = (await kiosk.ok('POST', '/v1/sign-in/options', {})) as Json;
    const response = authenticator.assert(options, { counter: 11 });
    const signature = Buffer.from(response.response.signature, 'base64url');
    signature.writeUInt8(signature.readUInt8(signature.length - 1) ^ 0x01, signature.length - 1);
    response.response.signature = signature.toString('base64url');
    assertError(await kiosk.request('POST', '/v1/sign-in/verify', { response }), 400, 'WEBAUTHN_VERIFICATION_FAILED');
    const failed = ((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator
      .failedAttempts as number;
    assert.ok(failed >= 1);
    await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/unlock`, {});
    const unlocked = await assertAccountChange(
      await storedEvent('admin-action', 'operator-unlocked', ofOperator),
      12,
      'Unlock',
    );
    assert.equal(unlocked.unmapped.baton.detail.failedAttempts, failed);

    await t.admin.ok('PUT', `/v1/admin/operators/${operatorId}/roles`, { roles: ['teller', 'supervisor'] });
    const roles = await assertAccountChange(
      await storedEvent('admin-action', 'operator-roles-changed', ofOperator),
      99,
      'Roles Change',
    );
    assert.equal(roles.unmapped.baton.detail.previousRoles, 'teller');
    assert.equal(roles.unmapped.baton.detail.roles, 'teller supervisor');

    // Unchanged: the revocation's own record is the Disable; the admin's action recording it, and an
    // admin action about no operator, stay Base Events.
    await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/revoke`, { reason: 'left the bank' });
    await assertAccountChange(await storedEvent('operator-revoked', 'revoked-by-admin', ofOperator), 5, 'Disable');
    await assertBaseEvent(await storedEvent('admin-action', 'revoke-operator', ofOperator));
    await assertBaseEvent(
      await storedEvent('admin-action', 'scim-directory-created', (e) => e.detail?.['directory'] === directoryId),
    );
  });
});
