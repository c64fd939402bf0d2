/**
 * What ends an admin's access on one node of a PostgreSQL cluster ends it on every node at once,
 * live event streams included: an admin API token revoked, an admin role a SCIM directory removed, a
 * passkey suspended as a possible copy. Two real backends on one database. The safety nets that
 * would also end a stream later (each stream's keep-alive check, and the cluster bus's periodic
 * resync, which re-checks every stream a node holds) are set to an hour, so a stream that ends here
 * was ended by the change itself.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AdminBrowser } from '../helpers/admin-session.js';
import { assertError, startTestBackend, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { createDatabase, postgresSkip, startPostgres, type PostgresServer } from '../helpers/postgres-server.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const OPERATOR_EXT = 'urn:baton:params:scim:schemas:extension:2.0:Operator';
/** Only turns a stream that never ends into a failure: far below the hour-long safety nets, not a speed bound. */
const STREAM_TEST_TIMEOUT_MS = 120_000;

/**
 * Opens the admin live event stream; resolves once the backend holds it (its answer's headers
 * arrived), with a promise that settles when the backend ends it.
 */
async function openStream(url: string, headers: Record<string, string>): Promise<{ ended: Promise<void> }> {
  const response = await fetch(`${url}/v1/admin/events/stream`, { headers });
  if (response.status !== 200) assert.fail(`the stream was refused: ${response.status} ${await response.text()}`);
  assert.ok(response.body !== null);
  const reader = response.body.getReader();
  const ended = (async () => {
    try {
      while (!(await reader.read()).done);
    } catch {
      // Destroyed by the backend: ended too.
    }
  })();
  return { ended };
}

describe('admin access ended on one node ends on the other at once', { skip: postgresSkip() }, () => {
  let server: PostgresServer;
  let nodeA: TestBackend;
  let nodeB: TestBackend;
  let root: AdminBrowser;

  before(async () => {
    server = await startPostgres();
    const databaseUrl = await createDatabase(server.url, `baton_admin_ends_${process.pid}`);
    // The periodic resync runs every `staleAfterSeconds` (compose-services.ts).
    const hour = { databaseUrl, eventStreamKeepAliveSeconds: 3600, staleAfterSeconds: 3600 };
    nodeA = await startTestBackend(hour);
    nodeB = await startTestBackend(hour, { adminToken: nodeA.admin.token });
    const first = await nodeA.admin.ok('POST', '/v1/admin/bootstrap', { id: 'root', displayName: 'Root Admin' });
    root = new AdminBrowser(nodeA.url, nodeA.backend.adminOrigin);
    assert.equal((await root.register(first.code as string)).status, 201);
  });
  after(async () => {
    await nodeB?.stop();
    await nodeA?.stop();
    await server?.stop();
  });

  it(
    'revoking an admin API token on node A ends the event stream it reads on node B',
    { timeout: STREAM_TEST_TIMEOUT_MS },
    async () => {
      assert.equal((await root.stepUp()).status, 200);
      const issued = await root.ok('POST', '/v1/admin/api-tokens', { label: 'siem-export', scope: 'read', ttlDays: 1 });
      const bearer = { authorization: `Bearer ${issued.token as string}` };
      const stream = await openStream(nodeB.url, bearer);
      await root.ok('POST', `/v1/admin/api-tokens/${issued.apiToken.id as string}/revoke`, { reason: 'leaked' });
      await stream.ended;
      const again = await fetch(`${nodeB.url}/v1/admin/events?limit=1`, { headers: bearer });
      assert.equal(((await again.json()) as Json).error.code, 'ADMIN_API_TOKEN_REVOKED');
    },
  );

  it(
    "a SCIM directory removing the admin role on node A ends that admin's stream on node B",
    { timeout: STREAM_TEST_TIMEOUT_MS },
    async () => {
      assert.equal((await root.stepUp()).status, 200);
      const created = await root.ok('POST', '/v1/admin/scim/directories', {
        name: 'Entra ID',
        groupRoles: { 'Baton Admins': ['admin'] },
      });
      const scim = async (method: string, path: string, body?: unknown) => {
        const response = await fetch(`${nodeA.url}/scim/v2${path}`, {
          method,
          headers: {
            authorization: `Bearer ${created.token as string}`,
            ...(body === undefined ? {} : { 'content-type': 'application/scim+json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        assert.ok(response.status < 300, `${method} ${path} → ${response.status}`);
        const text = await response.text();
        return (text === '' ? {} : JSON.parse(text)) as Json;
      };
      const user = await scim('POST', '/Users', { schemas: [USER], userName: 'ada@bank.example' });
      const operatorId = user[OPERATOR_EXT].operatorId as string;
      const group = await scim('POST', '/Groups', {
        schemas: [GROUP],
        displayName: 'Baton Admins',
        members: [{ value: user.id as string }],
      });
      // Ada, an admin through the directory, registers her passkey and reads the audit trail on node B.
      const code = await root.ok('POST', `/v1/admin/operators/${operatorId}/enrolment-codes`, {});
      const ada = new AdminBrowser(nodeB.url, nodeB.backend.adminOrigin);
      assert.equal((await ada.register(code.code as string)).status, 201);
      const stream = await openStream(nodeB.url, { cookie: ada.cookie ?? '' });
      // The directory removes the group (her only admin mapping) through node A.
      await scim('DELETE', `/Groups/${group.id as string}`);
      await stream.ended;
      assertError(await ada.request('GET', '/v1/admin/consoles'), 403, 'ADMIN_ROLE_REQUIRED');
    },
  );

  it(
    "a passkey suspended as a possible copy on node A ends the copy's session and stream on node B",
    { timeout: STREAM_TEST_TIMEOUT_MS },
    async () => {
      // The attacker copied root's authenticator (same key, its own counter) and signs in on node B.
      const copy = new SoftAuthenticator(nodeB.backend.adminOrigin);
      for (const [id, credential] of root.authenticator.credentials) copy.credentials.set(id, { ...credential });
      const attacker = new AdminBrowser(nodeB.url, nodeB.backend.adminOrigin, copy);
      assert.equal((await attacker.signIn()).status, 200);
      const stream = await openStream(nodeB.url, { cookie: attacker.cookie ?? '' });
      // Root signs in on node A with the genuine key: its counter is now behind the copy's.
      assertError(await root.signIn(), 403, 'WEBAUTHN_COUNTER_REGRESSED');
      // The suspension ends the copy's session at once: its stream on node B ends before it asks anything.
      await stream.ended;
      const credentialId = [...root.authenticator.credentials.keys()][0] ?? '';
      // The copy's fresh sign-in (a step-up) is worth nothing on node B: no read, no reinstating the passkey.
      assertError(await attacker.request('GET', '/v1/admin/consoles'), 401, 'ADMIN_SESSION_EXPIRED');
      assertError(
        await attacker.request('POST', `/v1/admin/credentials/${credentialId}/reinstate`, { reason: 'mine' }),
        401,
        'ADMIN_SESSION_EXPIRED',
      );
      assertError(await attacker.signIn(), 403, 'CREDENTIAL_SUSPENDED');
    },
  );
});
