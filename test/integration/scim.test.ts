/**
 * SCIM 2.0 provisioning of operators (issue 13), driven with the requests identity providers send:
 * Microsoft Entra ID (its provisioning service's published request examples) and Okta (its SCIM 2.0
 * reference), written from RFC 7644 and those examples. Checked as the directory sees it (status,
 * SCIM bodies and errors) and as Baton's operators, consoles and audit trail see it.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';

const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const LIST = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const OPERATOR_EXT = 'urn:baton:params:scim:schemas:extension:2.0:Operator';

describe('SCIM 2.0 provisioning of operators', () => {
  let t: TestBackend;
  let token = '';
  let directoryId = '';

  /** A SCIM call as the identity provider makes it. */
  async function scim(
    method: string,
    path: string,
    body?: unknown,
    bearer = token,
  ): Promise<{ status: number; body: Json; type: string | null }> {
    const response = await fetch(`${t.url}/scim/v2${path}`, {
      method,
      headers: {
        authorization: `Bearer ${bearer}`,
        accept: 'application/scim+json',
        ...(body === undefined ? {} : { 'content-type': 'application/scim+json; charset=utf-8' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return {
      status: response.status,
      body: text === '' ? undefined : (JSON.parse(text) as Json),
      type: response.headers.get('content-type'),
    };
  }

  /** A GET whose request target is sent exactly as written (no client-side `..` resolution). */
  function rawGet(target: string): Promise<{ status: number; body: Json; wwwAuthenticate: string | undefined }> {
    return new Promise((resolve, reject) => {
      const req = request(`${t.url}/`, { path: target, headers: { authorization: `Bearer ${token}` } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(text) as Json,
            wwwAuthenticate: res.headers['www-authenticate'],
          }),
        );
      });
      req.on('error', reject);
      req.end();
    });
  }

  function assertScimError(
    result: { status: number; body: Json },
    status: number,
    scimType: string | undefined,
    code: string,
  ) {
    assert.equal(result.status, status, JSON.stringify(result.body));
    assert.deepEqual(result.body.schemas, [ERROR]);
    assert.equal(result.body.status, String(status));
    assert.equal(result.body.scimType, scimType);
    assert.equal(result.body.error.code, code);
  }

  before(async () => {
    t = await startTestBackend();
    const created = (await t.admin.ok('POST', '/v1/admin/scim/directories', {
      name: 'Entra ID (workforce)',
      groupRoles: { 'Branch Tellers': ['teller'], 'Branch Supervisors': ['teller', 'supervisor'] },
    })) as Json;
    token = created.token;
    directoryId = created.directory.id;
  });
  after(() => t.stop());

  it('answers discovery: ServiceProviderConfig, ResourceTypes, Schemas (with the directory token only)', async () => {
    const config = await scim('GET', '/ServiceProviderConfig');
    assert.equal(config.status, 200);
    assert.match(config.type ?? '', /^application\/scim\+json/);
    assert.equal(config.body.patch.supported, true);
    assert.equal(config.body.filter.supported, true);
    assert.equal(config.body.authenticationSchemes[0].type, 'oauthbearertoken');
    const types = await scim('GET', '/ResourceTypes');
    assert.deepEqual(types.body.Resources.map((r: Json) => r.id).sort(), ['Group', 'User']);
    const schemas = await scim('GET', '/Schemas');
    assert.ok(schemas.body.Resources.some((s: Json) => s.id === USER));
    assertScimError(
      await scim('GET', '/ServiceProviderConfig', undefined, 'bscim_not-a-token'),
      401,
      undefined,
      'SCIM_AUTH_FAILED',
    );
    const listed = (await t.admin.ok('GET', '/v1/admin/scim/directories')) as Json;
    const mine = listed.directories.find((d: Json) => d.id === directoryId);
    assert.equal(mine.name, 'Entra ID (workforce)');
    assert.equal(mine.tokenHash, undefined, 'the token hash is never shown');
    assert.notEqual(mine.lastUsedAt, null);
  });

  it('provisions a user the way Entra ID does: filter first, create, then PATCH {"active": false} revokes everywhere', async () => {
    // Entra looks the user up before creating it.
    const lookup = await scim(
      'GET',
      `/Users?filter=${encodeURIComponent('userName eq "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"')}`,
    );
    assert.equal(lookup.status, 200);
    assert.deepEqual(lookup.body, { schemas: [LIST], totalResults: 0, startIndex: 1, itemsPerPage: 0, Resources: [] });
    const created = await scim('POST', '/Users', {
      schemas: [USER, ENTERPRISE],
      externalId: '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef',
      userName: 'Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1',
      active: true,
      emails: [{ primary: true, type: 'work', value: 'Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com' }],
      meta: { resourceType: 'User' },
      name: { formatted: 'givenName familyName', familyName: 'familyName', givenName: 'givenName' },
      roles: [],
      [ENTERPRISE]: { department: 'Retail Banking', employeeNumber: '701984' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const user = created.body;
    assert.equal(user.userName, 'Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1');
    assert.equal(user.active, true);
    assert.equal(user.meta.resourceType, 'User');
    assert.equal(user.meta.location, `${t.url}/scim/v2/Users/${user.id as string}`);
    assert.equal(user[ENTERPRISE].department, 'Retail Banking');
    const operatorId = user[OPERATOR_EXT].operatorId as string;
    const operator = (await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json;
    assert.equal(operator.operator.displayName, 'givenName familyName');

    // Uniqueness (userName is case-insensitive), and lookups by userName and externalId.
    const again = await scim('POST', '/Users', {
      schemas: [USER],
      userName: 'test_user_AB6490EE-1e48-479e-a20b-2d77186b5dd1',
    });
    assertScimError(again, 409, 'uniqueness', 'SCIM_UNIQUENESS');
    const byExternal = await scim(
      'GET',
      `/Users?filter=${encodeURIComponent('externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"')}`,
    );
    assert.equal(byExternal.body.totalResults, 1);
    assert.equal(byExternal.body.Resources[0].id, user.id);

    // Entra's attribute update: PATCH with Replace (capitalised) and a path into a filtered multi-valued attribute.
    const updated = await scim('PATCH', `/Users/${user.id as string}`, {
      schemas: [PATCH],
      Operations: [
        { op: 'Replace', path: 'emails[type eq "work"].value', value: 'updatedEmail@microsoft.com' },
        { op: 'Replace', path: 'name.familyName', value: 'updatedFamilyName' },
        { op: 'Add', path: `${ENTERPRISE}:manager`, value: 'ManagerId' },
      ],
    });
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
    assert.equal(updated.body.emails[0].value, 'updatedEmail@microsoft.com');
    assert.equal(updated.body.name.familyName, 'updatedFamilyName');
    assert.equal(updated.body[ENTERPRISE].manager, 'ManagerId');

    // The operator signs in on a console; the directory disables the account.
    const console = await TestConsole.enrol(t.url, t.admin);
    const code = (await t.admin.ok('POST', `/v1/admin/operators/${operatorId}/enrolment-codes`, {})) as Json;
    const { SoftAuthenticator } = await import('../helpers/soft-authenticator.js');
    const { TEST_ORIGIN } = await import('../helpers/backend-harness.js');
    const authenticator = new SoftAuthenticator(TEST_ORIGIN);
    const { options: creation } = (await console.ok('POST', '/v1/operators/enrol/options', {
      code: code.code,
    })) as Json;
    await console.ok('POST', '/v1/operators/enrol/verify', {
      code: code.code,
      response: authenticator.register(creation),
    });
    const session = ((await signIn(console, authenticator)).body as Json).session;
    const socket = await console.connect();
    await socket.next('welcome');

    const disabled = await scim('PATCH', `/Users/${user.id as string}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', value: { active: false } }],
    });
    assert.equal(disabled.status, 200);
    assert.equal(disabled.body.active, false);
    const revocation = await socket.next('revocation', (m) =>
      m.items.some((i) => i.kind === 'operator' && i.targetId === operatorId),
    );
    assert.match(revocation.items[0]?.reason ?? '', /deactivated in directory Entra ID/);
    socket.send({ type: 'ack', of: 'revocation', epoch: revocation.epoch });
    await console.roundTrip(socket);
    const deliveries = (await t.admin.ok('GET', `/v1/admin/revocations/${revocation.epoch}/deliveries`)) as Json;
    assert.ok((deliveries.deliveries as Json[]).some((d) => d.consoleId === console.id && d.ackedAt != null));
    const ended = (await t.admin.ok(
      'GET',
      `/v1/admin/events?session=${session.id as string}&type=session-revoked`,
    )) as Json;
    assert.equal(ended.events.length, 1);
    assert.equal((await signIn(console, authenticator)).body.error.code, 'OPERATOR_REVOKED');
    await socket.close();

    // Every change is an event naming the directory.
    const events = (await t.admin.ok(
      'GET',
      `/v1/admin/events?type=scim-provisioning&operator=${operatorId}&limit=100`,
    )) as Json;
    const reasons = (events.events as Json[]).map((e) => e.reasons[0]);
    for (const r of ['user-created', 'user-patched', 'user-deactivated'])
      assert.ok(reasons.includes(r), reasons.join());
    assert.ok(
      (events.events as Json[]).every(
        (e) => e.detail.directory === directoryId && e.detail.directoryName === 'Entra ID (workforce)',
      ),
    );
    const revokedEvent = (await t.admin.ok(
      'GET',
      `/v1/admin/events?type=operator-revoked&operator=${operatorId}`,
    )) as Json;
    assert.equal(revokedEvent.events[0].detail.actor, `scim:${directoryId}`);

    // Enabled again: a new operator (a revocation is final), who enrols a passkey again.
    const enabled = await scim('PATCH', `/Users/${user.id as string}`, {
      schemas: [PATCH],
      Operations: [{ op: 'Replace', path: 'active', value: 'True' }],
    });
    assert.equal(enabled.body.active, true);
    assert.notEqual(enabled.body[OPERATOR_EXT].operatorId, operatorId);
  });

  it('provisions the way Okta does: PUT replaces, PATCH path "active" deactivates, DELETE removes', async () => {
    const created = await scim('POST', '/Users', {
      schemas: [USER],
      userName: 'ola.okta@bank.example',
      name: { givenName: 'Ola', familyName: 'Okta' },
      emails: [{ primary: true, value: 'ola.okta@bank.example', type: 'work' }],
      displayName: 'Ola Okta',
      locale: 'en-US',
      externalId: '00ujl29u0le5T6Aj10h7',
      groups: [],
      password: 'never-stored-1!',
      active: true,
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.password, undefined, 'a password is never stored or returned');
    const id = created.body.id as string;
    const operatorId = created.body[OPERATOR_EXT].operatorId as string;
    const replaced = await scim('PUT', `/Users/${id}`, {
      schemas: [USER],
      id,
      userName: 'ola.okta@bank.example',
      name: { givenName: 'Ola', familyName: 'Okta-Smith' },
      emails: [{ primary: true, value: 'ola.okta@bank.example', type: 'work' }],
      displayName: 'Ola Okta-Smith',
      active: true,
    });
    assert.equal(replaced.status, 200);
    assert.equal(replaced.body.locale, undefined, 'PUT replaces: what is left out is cleared');
    assert.equal(
      ((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator.displayName,
      'Ola Okta-Smith',
    );
    assertScimError(
      await scim('PUT', `/Users/${id}`, { schemas: [USER], id: 'other', userName: 'x' }),
      400,
      'mutability',
      'SCIM_MUTABILITY',
    );

    const deactivated = await scim('PATCH', `/Users/${id}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', path: 'active', value: false }],
    });
    assert.equal(deactivated.body.active, false);
    assert.notEqual(((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator.revokedAt, null);

    assert.equal((await scim('DELETE', `/Users/${id}`)).status, 204);
    assertScimError(await scim('GET', `/Users/${id}`), 404, undefined, 'SCIM_RESOURCE_UNKNOWN');
    assertScimError(await scim('DELETE', `/Users/${id}`), 404, undefined, 'SCIM_RESOURCE_UNKNOWN');
  });

  it('maps groups to roles: members get the mapped roles, lose them when removed (Entra and Okta group PATCHes)', async () => {
    const make = async (userName: string) =>
      (await scim('POST', '/Users', { schemas: [USER], userName, active: true })).body;
    const a = await make('grace.group@bank.example');
    const b = await make('hugo.group@bank.example');
    const rolesOf = async (u: Json) =>
      ((await t.admin.ok('GET', `/v1/admin/operators/${u[OPERATOR_EXT].operatorId as string}`)) as Json).operator.roles;

    const group = await scim('POST', '/Groups', {
      schemas: [GROUP],
      displayName: 'Branch Tellers',
      externalId: 'grp-1',
      members: [{ value: a.id }],
    });
    assert.equal(group.status, 201);
    assert.deepEqual(await rolesOf(a), ['teller']);
    assertScimError(
      await scim('POST', '/Groups', { schemas: [GROUP], displayName: 'branch tellers' }),
      409,
      'uniqueness',
      'SCIM_UNIQUENESS',
    );

    // Entra: add a member, remove one with a value list.
    const gid = group.body.id as string;
    await scim('PATCH', `/Groups/${gid}`, {
      schemas: [PATCH],
      Operations: [{ op: 'Add', path: 'members', value: [{ value: b.id }] }],
    });
    assert.deepEqual(await rolesOf(b), ['teller']);
    await scim('PATCH', `/Groups/${gid}`, {
      schemas: [PATCH],
      Operations: [{ op: 'Remove', path: 'members', value: [{ value: a.id }] }],
    });
    assert.deepEqual(await rolesOf(a), []);
    // Okta: rename through a path-less replace; remove a member by filter.
    const renamed = await scim('PATCH', `/Groups/${gid}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', value: { id: gid, displayName: 'Branch Supervisors' } }],
    });
    assert.equal(renamed.body.displayName, 'Branch Supervisors');
    assert.deepEqual(await rolesOf(b), ['supervisor', 'teller']);
    const listed = await scim(
      'GET',
      `/Groups?filter=${encodeURIComponent('displayName eq "Branch Supervisors"')}&excludedAttributes=members`,
    );
    assert.equal(listed.body.totalResults, 1);
    assert.equal(listed.body.Resources[0].members, undefined);
    await scim('PATCH', `/Groups/${gid}`, {
      schemas: [PATCH],
      Operations: [{ op: 'remove', path: `members[value eq "${b.id as string}"]` }],
    });
    assert.deepEqual(await rolesOf(b), []);

    // The admin changes the mapping: members' roles follow.
    await scim('PATCH', `/Groups/${gid}`, {
      schemas: [PATCH],
      Operations: [{ op: 'add', path: 'members', value: [{ value: a.id }] }],
    });
    await t.admin.ok('PUT', `/v1/admin/scim/directories/${directoryId}/group-roles`, {
      groupRoles: { 'Branch Supervisors': ['auditor'] },
    });
    assert.deepEqual(await rolesOf(a), ['auditor']);
    assert.equal((await scim('DELETE', `/Groups/${gid}`)).status, 204);
    assert.deepEqual(await rolesOf(a), []);
    assertScimError(
      await scim('POST', '/Groups', { schemas: [GROUP], displayName: 'Ghosts', members: [{ value: 'scu_missing' }] }),
      400,
      'invalidValue',
      'SCIM_INVALID_VALUE',
    );
  });

  it('pages with startIndex and count, and refuses what it does not support with SCIM errors', async () => {
    for (let i = 0; i < 5; i++) await scim('POST', '/Users', { schemas: [USER], userName: `page.${i}@bank.example` });
    const all = await scim('GET', '/Users?count=0');
    assert.ok(all.body.totalResults >= 5);
    assert.deepEqual(all.body.Resources, []);
    const page = await scim('GET', '/Users?startIndex=2&count=2');
    assert.equal(page.body.startIndex, 2);
    assert.equal(page.body.itemsPerPage, 2);
    const next = await scim('GET', '/Users?startIndex=4&count=2');
    assert.notEqual(page.body.Resources[0].id, next.body.Resources[0].id);
    assertScimError(
      await scim('GET', `/Users?filter=${encodeURIComponent('userName co "page"')}`),
      400,
      'invalidFilter',
      'SCIM_INVALID_FILTER',
    );
    assertScimError(
      await scim('GET', `/Users?filter=${encodeURIComponent('title eq "x"')}`),
      400,
      'invalidFilter',
      'SCIM_INVALID_FILTER',
    );
    assertScimError(
      await scim('POST', '/Users', { schemas: [USER], name: { givenName: 'No' } }),
      400,
      'invalidValue',
      'SCIM_INVALID_VALUE',
    );
    const id = page.body.Resources[0].id as string;
    assertScimError(
      await scim('PATCH', `/Users/${id}`, {
        schemas: [PATCH],
        Operations: [{ op: 'replace', path: 'emails[type co "w"].value', value: 'x' }],
      }),
      400,
      'invalidPath',
      'SCIM_INVALID_PATH',
    );
    assertScimError(
      await scim('PATCH', `/Users/${id}`, { Operations: [{ op: 'move', path: 'x' }] }),
      400,
      'invalidSyntax',
      'SCIM_INVALID_SYNTAX',
    );
    const raw = await fetch(`${t.url}/scim/v2/Users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' },
      body: '{not json',
    });
    assert.equal(raw.status, 400);
    assert.equal(((await raw.json()) as Json).scimType, 'invalidSyntax');
  });

  it('what fails before a SCIM endpoint runs still answers in SCIM’s error shape: unknown endpoint, method not allowed, body too large', async () => {
    const unknown = await scim('GET', '/Bogus');
    assertScimError(unknown, 404, undefined, 'NOT_FOUND');
    assert.match(unknown.type ?? '', /^application\/scim\+json/);
    const method = await scim('POST', '/ServiceProviderConfig', { schemas: [USER] });
    assertScimError(method, 405, undefined, 'METHOD_NOT_ALLOWED');
    assert.match(method.type ?? '', /^application\/scim\+json/);
    const big = await scim('POST', '/Users', {
      schemas: [USER],
      userName: 'big@bank.example',
      title: 'x'.repeat(200_000),
    });
    assertScimError(big, 413, undefined, 'PAYLOAD_TOO_LARGE');
    assert.match(big.type ?? '', /^application\/scim\+json/);
    const found = await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "big@bank.example"')}`);
    assert.equal(found.body.totalResults, 0, 'the oversized User was not stored');
    // The shape follows the path as the server routes it (`..` resolved), sent as is (fetch would resolve it first).
    const dotted = await rawGet('/v1/../scim/v2/Bogus');
    assert.equal(dotted.status, 404);
    assert.deepEqual(dotted.body.schemas, [ERROR]);
    const escaped = await rawGet('/scim/v2/../../v1/admin/scim/directories');
    assert.equal(escaped.status, 401, 'the admin route ran');
    assert.equal(escaped.wwwAuthenticate, undefined, 'not answered as SCIM');
    assert.equal(escaped.body.schemas, undefined);
    // Outside /scim/v2 the API keeps Baton's own error shape.
    const api = await fetch(`${t.url}/v1/nothing-here`);
    assert.equal(api.status, 404);
    assert.equal(((await api.json()) as Json).schemas, undefined);
  });

  it('a bad escape in a PATCH filter path is 400 invalidPath; a startIndex past every result is an empty page', async () => {
    const user = await scim('POST', '/Users', { schemas: [USER], userName: 'escapes@bank.example' });
    assert.equal(user.status, 201);
    assertScimError(
      await scim('PATCH', `/Users/${user.body.id}`, {
        schemas: [PATCH],
        Operations: [{ op: 'replace', path: 'emails[type eq "\\q"].value', value: 'x' }],
      }),
      400,
      'invalidPath',
      'SCIM_INVALID_PATH',
    );
    const group = await scim('POST', '/Groups', { schemas: [GROUP], displayName: 'Escapes' });
    assert.equal(group.status, 201);
    assertScimError(
      await scim('PATCH', `/Groups/${group.body.id}`, {
        schemas: [PATCH],
        Operations: [{ op: 'remove', path: 'members[value eq "\\x"]' }],
      }),
      400,
      'invalidPath',
      'SCIM_INVALID_PATH',
    );
    for (const startIndex of ['99999999999999999999', '9007199254740993', '1e300']) {
      for (const resource of ['Users', 'Groups']) {
        const page = await scim('GET', `/${resource}?startIndex=${startIndex}&count=5`);
        assert.equal(page.status, 200, `${resource} startIndex=${startIndex}: ${JSON.stringify(page.body)}`);
        assert.deepEqual(page.body.Resources, []);
        assert.ok(page.body.totalResults >= 1);
      }
    }
  });

  it('PATCH refuses sub-paths of core and read-only attributes, SCIM core schemas other than User and wrong types; the User stays as it was', async () => {
    const user = await scim('POST', '/Users', {
      schemas: [USER],
      userName: 'subpaths@bank.example',
      externalId: 'x-1',
    });
    assert.equal(user.status, 201);
    const id = user.body.id as string;
    const operatorId = user.body[OPERATOR_EXT].operatorId as string;
    const refused: [string, unknown, string, string][] = [
      ['id.x', 1, 'mutability', 'SCIM_MUTABILITY'],
      ['meta.version', 'W/"9"', 'mutability', 'SCIM_MUTABILITY'],
      ['schemas.z', 2, 'mutability', 'SCIM_MUTABILITY'],
      [`${OPERATOR_EXT}:operatorId`, 'op_other', 'mutability', 'SCIM_MUTABILITY'],
      [OPERATOR_EXT, { roles: ['supervisor'] }, 'mutability', 'SCIM_MUTABILITY'],
      ['userName.evil', 'y', 'invalidPath', 'SCIM_INVALID_PATH'],
      ['externalId.x', 'y', 'invalidPath', 'SCIM_INVALID_PATH'],
      ['active.x', false, 'invalidPath', 'SCIM_INVALID_PATH'],
      ['userName[type eq "work"].value', 'y', 'invalidPath', 'SCIM_INVALID_PATH'],
      [`${GROUP}:displayName`, 'x', 'invalidPath', 'SCIM_INVALID_PATH'],
      [`${PATCH}:Operations`, [], 'invalidPath', 'SCIM_INVALID_PATH'],
      ['emails', 'not-a-list', 'invalidValue', 'SCIM_INVALID_VALUE'],
      ['emails', [1], 'invalidValue', 'SCIM_INVALID_VALUE'],
      ['name', 42, 'invalidValue', 'SCIM_INVALID_VALUE'],
      ['displayName', { x: 1 }, 'invalidValue', 'SCIM_INVALID_VALUE'],
      [ENTERPRISE, 'x', 'invalidValue', 'SCIM_INVALID_VALUE'],
    ];
    for (const [path, value, scimType, code] of refused) {
      for (const op of ['add', 'replace']) {
        const result = await scim('PATCH', `/Users/${id}`, { schemas: [PATCH], Operations: [{ op, path, value }] });
        assert.equal(result.status, 400, `${op} ${path}: ${JSON.stringify(result.body)}`);
        assertScimError(result, 400, scimType, code);
      }
    }
    // What the directory reads afterwards: the User as created, its link (id) intact.
    const expected = (body: Json) => {
      assert.equal(body.id, id);
      assert.equal(body.userName, 'subpaths@bank.example');
      assert.equal(body.externalId, 'x-1');
      assert.equal(body.active, true);
      assert.deepEqual(body.schemas, [USER, OPERATOR_EXT]);
      assert.equal(body[OPERATOR_EXT].operatorId, operatorId);
      assert.equal(body.emails, undefined);
      assert.equal(body.name, undefined);
      assert.equal(body.meta.location.endsWith(`/Users/${id}`), true);
    };
    expected((await scim('GET', `/Users/${id}`)).body);
    const found = await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "subpaths@bank.example"')}`);
    assert.equal(found.body.totalResults, 1);
    expected(found.body.Resources[0]);
    // What is allowed still is, and an enterprise-extension path adds that schema only.
    const ok = await scim('PATCH', `/Users/${id}`, {
      schemas: [PATCH],
      Operations: [
        { op: 'add', path: 'name.givenName', value: 'Sub' },
        { op: 'add', path: 'emails[type eq "work"].value', value: 'sub@bank.example' },
        { op: 'add', path: `${ENTERPRISE}:department`, value: 'Branch 7' },
      ],
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const after = (await scim('GET', `/Users/${id}`)).body;
    assert.equal(after.id, id);
    assert.deepEqual(after.schemas, [USER, ENTERPRISE, OPERATOR_EXT]);
    assert.deepEqual(after.name, { givenName: 'Sub' });
    assert.deepEqual(after.emails, [{ type: 'work', value: 'sub@bank.example' }]);
    assert.deepEqual(after[ENTERPRISE], { department: 'Branch 7' });
    // A Group: a member sub-attribute path would have replaced the members; an extension path renamed it.
    const group = await scim('POST', '/Groups', {
      schemas: [GROUP],
      displayName: 'Sub Paths',
      members: [{ value: id }],
    });
    assert.equal(group.status, 201);
    const groupRefused: [string, unknown, string, string][] = [
      ['members.display', [{ value: 'x' }], 'invalidPath', 'SCIM_INVALID_PATH'],
      ['members.value', [], 'invalidPath', 'SCIM_INVALID_PATH'],
      [`members[value eq "${id}"].display`, 'x', 'invalidPath', 'SCIM_INVALID_PATH'],
      ['urn:foo:displayName', 'Renamed', 'invalidPath', 'SCIM_INVALID_PATH'],
      ['urn:foo:members', [], 'invalidPath', 'SCIM_INVALID_PATH'],
      ['meta.version', 'x', 'mutability', 'SCIM_MUTABILITY'],
      ['id.x', 1, 'mutability', 'SCIM_MUTABILITY'],
    ];
    for (const [path, value, scimType, code] of groupRefused) {
      for (const op of ['replace', 'remove']) {
        const body = op === 'remove' ? { op, path } : { op, path, value };
        const result = await scim('PATCH', `/Groups/${group.body.id}`, { schemas: [PATCH], Operations: [body] });
        assert.equal(result.status, 400, `${op} ${path}: ${JSON.stringify(result.body)}`);
        assertScimError(result, 400, scimType, code);
      }
    }
    const groupAfter = (await scim('GET', `/Groups/${group.body.id}`)).body;
    assert.equal(groupAfter.displayName, 'Sub Paths');
    assert.deepEqual(
      groupAfter.members.map((m: Json) => m.value),
      [id],
    );
  });

  it('a custom extension the User does not carry yet: Entra’s PATCH add stores it (and its schema), remove of an absent one succeeds, Baton’s extension stays read-only', async () => {
    const CUSTOM = 'urn:ietf:params:scim:schemas:extension:BatonBank:2.0:User';
    const OKTA = 'urn:ietf:params:scim:schemas:extension:OktaApp:2.0:User';
    const user = await scim('POST', '/Users', {
      schemas: [USER],
      userName: 'custom-ext@bank.example',
      externalId: 'ce-1',
      active: true,
    });
    assert.equal(user.status, 201);
    const id = user.body.id as string;
    // Entra's request for a custom attribute's first value (the POST carried only attributes with values).
    const first = await scim('PATCH', `/Users/${id}`, {
      schemas: [PATCH],
      Operations: [{ op: 'Add', path: `${CUSTOM}:costCenter`, value: 'CC-4711' }],
    });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(first.body.schemas, [USER, CUSTOM, OPERATOR_EXT]);
    assert.deepEqual(first.body[CUSTOM], { costCenter: 'CC-4711' });
    // Removing an attribute of an extension the User does not carry: nothing to do, success, no schema added.
    const removed = await scim('PATCH', `/Users/${id}`, {
      schemas: [PATCH],
      Operations: [
        { op: 'Remove', path: `${OKTA}:badge` },
        { op: 'remove', path: OKTA },
      ],
    });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.deepEqual(removed.body.schemas, [USER, CUSTOM, OPERATOR_EXT]);
    // A path-less value naming the extension (whole or by attribute) is the same.
    const pathless = await scim('PATCH', `/Users/${id}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', value: { [OKTA]: { badge: 'B-7' }, [`${CUSTOM}:division`]: 'Retail' } }],
    });
    assert.equal(pathless.status, 200, JSON.stringify(pathless.body));
    const got = (await scim('GET', `/Users/${id}`)).body;
    assert.deepEqual(got.schemas, [USER, CUSTOM, OKTA, OPERATOR_EXT]);
    assert.deepEqual(got[CUSTOM], { costCenter: 'CC-4711', division: 'Retail' });
    assert.deepEqual(got[OKTA], { badge: 'B-7' });
    assert.equal(got.userName, 'custom-ext@bank.example');
    // Still refused: Baton's extension by any path or key, core sub-paths, wrong types of core attributes.
    const refused: [Json, string, string][] = [
      [{ op: 'add', path: `${OPERATOR_EXT}:roles`, value: ['supervisor'] }, 'mutability', 'SCIM_MUTABILITY'],
      [{ op: 'remove', path: `${OPERATOR_EXT}:operatorId` }, 'mutability', 'SCIM_MUTABILITY'],
      [{ op: 'add', path: 'meta.version', value: 'x' }, 'mutability', 'SCIM_MUTABILITY'],
      [{ op: 'add', path: 'active.x', value: false }, 'invalidPath', 'SCIM_INVALID_PATH'],
      [{ op: 'add', path: 'emails', value: 'x' }, 'invalidValue', 'SCIM_INVALID_VALUE'],
      [{ op: 'add', value: { emails: 'x', [`${CUSTOM}:site`]: 'Y' } }, 'invalidValue', 'SCIM_INVALID_VALUE'],
      [{ op: 'add', path: CUSTOM, value: 'not-an-object' }, 'invalidValue', 'SCIM_INVALID_VALUE'],
    ];
    for (const [op, scimType, code] of refused) {
      const result = await scim('PATCH', `/Users/${id}`, { schemas: [PATCH], Operations: [op] });
      assertScimError(result, 400, scimType, code);
    }
    const unchanged = (await scim('GET', `/Users/${id}`)).body;
    assert.deepEqual(unchanged.schemas, [USER, CUSTOM, OKTA, OPERATOR_EXT]);
    assert.deepEqual(unchanged[CUSTOM], { costCenter: 'CC-4711', division: 'Retail' });
    assert.equal(unchanged.emails, undefined);
  });

  it('attribute names are case-insensitive on POST and PUT as on PATCH (RFC 7643 §2.1)', async () => {
    const created = await scim('POST', '/Users', {
      schemas: [USER],
      UserName: 'case@bank.example',
      EXTERNALID: 'ext-case',
      Active: false,
      DisplayName: 'Case Person',
      NAME: { GivenName: 'Ca', familyname: 'Se' },
      Emails: [{ value: 'case@bank.example', type: 'work' }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    const operatorId = created.body[OPERATOR_EXT].operatorId as string;
    const read = (await scim('GET', `/Users/${id}`)).body;
    assert.equal(read.userName, 'case@bank.example');
    assert.equal(read.externalId, 'ext-case');
    assert.equal(read.active, false);
    assert.equal(read.displayName, 'Case Person');
    assert.deepEqual(read.name, { givenName: 'Ca', familyName: 'Se' });
    assert.deepEqual(read.emails, [{ value: 'case@bank.example', type: 'work' }]);
    for (const stray of ['UserName', 'EXTERNALID', 'Active', 'DisplayName', 'NAME', 'Emails'])
      assert.equal(read[stray], undefined, stray);
    // Created disabled: its operator is revoked, as with "active": false.
    assert.notEqual(((await t.admin.ok('GET', `/v1/admin/operators/${operatorId}`)) as Json).operator.revokedAt, null);
    const found = await scim('GET', `/Users?filter=${encodeURIComponent('externalId eq "ext-case"')}`);
    assert.equal(found.body.totalResults, 1);

    const replaced = await scim('PUT', `/Users/${id}`, {
      schemas: [USER],
      ID: id,
      username: 'case@bank.example',
      ACTIVE: true,
      displayname: 'Case Renamed',
    });
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    const after = (await scim('GET', `/Users/${id}`)).body;
    assert.equal(after.active, true);
    assert.equal(after.displayName, 'Case Renamed');
    assert.equal(after.externalId, undefined);
    const operator = (
      (await t.admin.ok('GET', `/v1/admin/operators/${after[OPERATOR_EXT].operatorId as string}`)) as Json
    ).operator;
    assert.equal(operator.displayName, 'Case Renamed');
    assert.equal(operator.revokedAt, null);
    assertScimError(
      await scim('PUT', `/Users/${id}`, { Id: 'scu_other', userName: 'case@bank.example' }),
      400,
      'mutability',
      'SCIM_MUTABILITY',
    );
    assertScimError(
      await scim('PUT', `/Users/${id}`, { userName: 'case@bank.example', active: true, Active: false }),
      400,
      'invalidSyntax',
      'SCIM_INVALID_SYNTAX',
    );
    assert.equal((await scim('GET', `/Users/${id}`)).body.active, true);
    // PATCH, path-less and by path, was already case-insensitive.
    const patched = await scim('PATCH', `/Users/${id}`, {
      schemas: [PATCH],
      Operations: [
        { op: 'replace', value: { ACTIVE: false } },
        { op: 'add', path: 'NAME.GivenName', value: 'Cee' },
      ],
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.active, false);
    assert.deepEqual(patched.body.name, { givenName: 'Cee' });

    const group = await scim('POST', '/Groups', {
      schemas: [GROUP],
      DisplayName: 'Case Group',
      ExternalId: 'g-case',
      Members: [{ Value: id }],
    });
    assert.equal(group.status, 201, JSON.stringify(group.body));
    const groupRead = (await scim('GET', `/Groups/${group.body.id}`)).body;
    assert.equal(groupRead.displayName, 'Case Group');
    assert.equal(groupRead.externalId, 'g-case');
    assert.deepEqual(
      groupRead.members.map((m: Json) => m.value),
      [id],
    );
    const groupReplaced = await scim('PUT', `/Groups/${group.body.id}`, { DISPLAYNAME: 'Case Group 2', MEMBERS: [] });
    assert.equal(groupReplaced.status, 200, JSON.stringify(groupReplaced.body));
    const groupAfter = (await scim('GET', `/Groups/${group.body.id}`)).body;
    assert.equal(groupAfter.displayName, 'Case Group 2');
    assert.deepEqual(groupAfter.members, []);
  });

  it('a path-less PATCH skips the read-only attributes a directory echoes (schemas, meta, the extension), on a User as on a Group', async () => {
    const user = await scim('POST', '/Users', { schemas: [USER], userName: 'echo@bank.example', displayName: 'Echo' });
    assert.equal(user.status, 201);
    const id = user.body.id as string;
    const read = (await scim('GET', `/Users/${id}`)).body;
    const echoed = await scim('PATCH', `/Users/${id}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', value: { ...read, displayName: 'Echo Renamed' } }],
    });
    assert.equal(echoed.status, 200, JSON.stringify(echoed.body));
    const after = (await scim('GET', `/Users/${id}`)).body;
    assert.equal(after.displayName, 'Echo Renamed');
    assert.equal(after.id, id);
    assert.deepEqual(after.schemas, [USER, OPERATOR_EXT]);
    assert.equal(after[OPERATOR_EXT].operatorId, read[OPERATOR_EXT].operatorId);
    assert.equal(after.meta.version, 'W/"2"');
    assertScimError(
      await scim('PATCH', `/Users/${id}`, {
        schemas: [PATCH],
        Operations: [{ op: 'replace', value: { id: 'scu_other', displayName: 'Other' } }],
      }),
      400,
      'mutability',
      'SCIM_MUTABILITY',
    );
    assert.equal((await scim('GET', `/Users/${id}`)).body.displayName, 'Echo Renamed');
    const group = await scim('POST', '/Groups', {
      schemas: [GROUP],
      displayName: 'Echo Group',
      members: [{ value: id }],
    });
    assert.equal(group.status, 201);
    const groupRead = (await scim('GET', `/Groups/${group.body.id}`)).body;
    const groupEchoed = await scim('PATCH', `/Groups/${group.body.id}`, {
      schemas: [PATCH],
      Operations: [{ op: 'replace', value: { ...groupRead, displayName: 'Echo Group 2' } }],
    });
    assert.equal(groupEchoed.status, 200, JSON.stringify(groupEchoed.body));
    assert.equal((await scim('GET', `/Groups/${group.body.id}`)).body.displayName, 'Echo Group 2');
  });

  it('a revoked directory token is refused, and an operator made by the admin is not the directory’s', async () => {
    const console = await TestConsole.enrol(t.url, t.admin);
    await enrolOperator(t.admin, console, { displayName: 'Not From Directory' });
    const list = await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "Not From Directory"')}`);
    assert.equal(list.body.totalResults, 0);
    const second = (await t.admin.ok('POST', '/v1/admin/scim/directories', { name: 'Okta' })) as Json;
    await t.admin.ok('POST', `/v1/admin/scim/directories/${second.directory.id as string}/revoke`, {});
    assertScimError(await scim('GET', '/Users', undefined, second.token), 401, undefined, 'SCIM_AUTH_FAILED');
  });
});
