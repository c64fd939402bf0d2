/**
 * `ssf.defaultSubjects` (SSF 1.0 §7.1.1 `default_subjects`): the transmitter metadata says what a new stream starts
 * with. With `NONE`, a stream gets events only about the subjects its receiver added (`/ssf/subjects/add`), and none
 * once it removes them; a stream created before the setting changed keeps what it was created with (ALL), and the
 * admin streams API shows each stream's. Real backend restarted on the same data, real HTTP, the conformance receiver.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestBackend, TestConsole, httpJson, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { ConformanceReceiver, type ReceivedSet } from '../helpers/ssf-receiver.js';
import { dropTestDatabase } from '../helpers/test-database.js';

const ESTABLISHED = 'https://schemas.openid.net/secevent/caep/event-type/session-established';
const POLL = 'urn:ietf:rfc:8936';

const userOf = (set: ReceivedSet) => (set.claims.sub_id as Json).user?.sub as string | undefined;

describe('Shared Signals transmitter: default_subjects NONE (ssf.defaultSubjects)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'baton-ssf-subjects-'));
  // A fixed issuer: the restarted backend listens on another port.
  const issuer = 'https://baton.bank.example';
  let t: TestBackend;
  let token: string;
  let audience: string;
  /** Created while the setting was ALL (the default). */
  let before_: { id: string };

  const call = (method: string, path: string, body?: unknown) =>
    httpJson(`${t.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}` },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  async function pollStream(): Promise<{ id: string }> {
    const created = await call('POST', '/ssf/streams', { delivery: { method: POLL }, events_requested: [ESTABLISHED] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.delivery.endpoint_url, `${issuer}/ssf/poll/${created.body.stream_id as string}`);
    return { id: created.body.stream_id as string };
  }

  /**
   * Drains a stream's poll endpoint until `done` holds, with a conformance receiver of its own (at the test backend's
   * address: the endpoint it names is under the production issuer).
   */
  function drainer(stream: { id: string }) {
    const receiver = new ConformanceReceiver({ issuer, audience, jwksUri: `${t.url}/ssf/jwks.json` });
    return (done: (sets: ReceivedSet[]) => boolean, what: string) =>
      receiver.drainPoll(`${t.url}/ssf/poll/${stream.id}`, token, done, what);
  }

  before(async () => {
    const first = await startTestBackend({ ssf: { issuer }, dataDir });
    const adminToken = first.admin.token;
    t = first;
    const issued = (await t.admin.ok('POST', '/v1/admin/ssf/receivers', {
      name: 'Core banking',
      scopes: ['ssf.manage'],
    })) as Json;
    token = issued.token as string;
    audience = issued.receiver.audience as string;
    assert.equal(
      ((await httpJson(`${t.url}/.well-known/ssf-configuration`, { method: 'GET' })).body as Json).default_subjects,
      'ALL',
    );
    before_ = await pollStream();
    await first.stop();
    t = await startTestBackend({ ssf: { issuer, defaultSubjects: 'NONE' }, dataDir }, { adminToken });
  });
  after(async () => {
    await t.stop();
    rmSync(dataDir, { recursive: true, force: true });
    await dropTestDatabase(dataDir);
  });

  it('the configuration says NONE; a new stream gets only the subjects added, none once removed; an older stream keeps ALL', async () => {
    const meta = (await httpJson(`${t.url}/.well-known/ssf-configuration`, { method: 'GET' })).body as Json;
    assert.equal(meta.default_subjects, 'NONE');
    const stream = await pollStream();
    const { streams } = (await t.admin.ok('GET', '/v1/admin/ssf/streams')) as Json;
    const shown = (id: string) => streams.find((s: Json) => s.id === id)?.defaultSubjects;
    assert.equal(shown(stream.id), 'NONE', 'created under NONE');
    assert.equal(shown(before_.id), 'ALL', 'created before the setting changed: it keeps ALL');

    const operator = async (displayName: string) => {
      const console = await TestConsole.enrol(t.url, t.admin);
      return { console, ...(await enrolOperator(t.admin, console, { displayName })) };
    };
    const ada = await operator('Ada Added');
    const bo = await operator('Bo Bystander');
    const signedIn = async (who: { console: TestConsole; authenticator: Parameters<typeof signIn>[1] }) => {
      const answer = await signIn(who.console, who.authenticator);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      return (answer.body as Json).session.id as string;
    };
    const subjectOf = (operatorId: string) => ({ format: 'iss_sub', iss: issuer, sub: operatorId });
    const added = await call('POST', '/ssf/subjects/add', { stream_id: stream.id, subject: subjectOf(ada.operatorId) });
    assert.equal(added.status, 200, JSON.stringify(added.body));

    // Bo first, then Ada: the stream's queue is in event order, so Bo's SET would come before Ada's.
    const boSession = await signedIn(bo);
    const adaSession = await signedIn(ada);
    const drainNew = drainer(stream);
    let sets = await drainNew(
      (s) => s.some((x) => x.type === ESTABLISHED && userOf(x) === ada.operatorId),
      "Ada's sign-in (an added subject)",
    );
    assert.deepEqual(
      sets.filter((x) => x.type === ESTABLISHED).map((x) => userOf(x)),
      [ada.operatorId],
      'only the added subject: nothing about Bo',
    );
    const older = await drainer(before_)(
      (s) => s.some((x) => x.type === ESTABLISHED && userOf(x) === ada.operatorId),
      "Ada's sign-in on the older stream",
    );
    assert.ok(
      older.some((x) => userOf(x) === bo.operatorId && (x.claims.sub_id as Json).session?.id === boSession),
      'the stream created under ALL still gets every subject',
    );
    assert.ok(older.some((x) => (x.claims.sub_id as Json).session?.id === adaSession));

    // Ada removed: her next sign-in is not sent. A marker after it: another operator, added.
    const removed = await call('POST', '/ssf/subjects/remove', {
      stream_id: stream.id,
      subject: subjectOf(ada.operatorId),
    });
    assert.equal(removed.status, 204, JSON.stringify(removed.body));
    const adaAgain = await signedIn({ ...ada, console: await TestConsole.enrol(t.url, t.admin) });
    const cy = await operator('Cy Marker');
    assert.equal(
      (await call('POST', '/ssf/subjects/add', { stream_id: stream.id, subject: subjectOf(cy.operatorId) })).status,
      200,
    );
    await signedIn(cy);
    sets = await drainNew((s) => s.some((x) => userOf(x) === cy.operatorId), "Cy's sign-in (the marker)");
    assert.deepEqual(
      sets.filter((x) => x.type === ESTABLISHED).map((x) => userOf(x)),
      [ada.operatorId, cy.operatorId],
      'nothing about Ada once removed (her session ' + adaAgain + '), nor about Bo',
    );
  });

  it('a NONE stream with no subject added still gets its own verification event', async () => {
    const stream = await pollStream();
    const asked = await call('POST', '/ssf/verify', { stream_id: stream.id, state: 'none-but-mine' });
    assert.equal(asked.status, 204, JSON.stringify(asked.body));
    const sets = await drainer(stream)(
      (s) => s.some((x) => x.type.endsWith('/verification')),
      'the verification event on a stream with no subjects',
    );
    const verification = sets.find((x) => x.type.endsWith('/verification'));
    assert.equal(verification?.event.state, 'none-but-mine');
    assert.deepEqual(verification?.claims.sub_id, { format: 'opaque', id: stream.id });
  });
});
