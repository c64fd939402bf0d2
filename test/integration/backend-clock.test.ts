import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { noteServerDate, serverNow } from '../../admin/server-clock.js';
import { httpDate } from '../../backend/http/http-kit.js';
import { startTestBackend, type TestBackend } from '../helpers/backend-harness.js';

/**
 * Every answer's `Date` header is the backend's clock, and the admin console reckons "the last 24 hours" on it:
 * an admin whose PC clock is off still sees the newest revocation (a Pictures page once came up empty because
 * the browser's hour ended before the revocation's).
 */
describe("the backend's clock in every answer", () => {
  const ahead = 3 * 3600_000 + 17 * 60_000;
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend({}, { clock: () => Date.now() + ahead });
  });
  after(() => t?.stop());

  const dateOf = async (path: string, init?: RequestInit) => {
    const response = await fetch(`${t.url}${path}`, init);
    await response.arrayBuffer();
    const header = response.headers.get('date');
    assert.ok(header !== null, `${path} answered without a Date header`);
    return { status: response.status, at: Date.parse(header) };
  };

  it('is on every kind of answer: health, an API refusal, an unknown path', async () => {
    for (const [path, status] of [
      ['/healthz', 200],
      ['/v1/admin/operators', 401],
      ['/no/such/path', 404],
    ] as const) {
      const before = Date.now() + ahead;
      const { status: got, at } = await dateOf(path);
      const after = Date.now() + ahead;
      assert.equal(got, status, path);
      // Whole seconds: the header is at most one second behind the clock it was read from.
      assert.ok(at >= Math.floor(before / 1000) * 1000 && at <= after, `${path}: ${new Date(at).toISOString()}`);
    }
  });

  it("moves the admin console's clock when it is off by more than two seconds, not for less", async () => {
    const { at } = await dateOf('/healthz');
    noteServerDate(new Date(at).toUTCString(), Date.now());
    assert.ok(Math.abs(serverNow() - (Date.now() + ahead)) < 2_000, 'the console follows the backend');
    noteServerDate(httpDate(Date.now() + 1_200), Date.now());
    assert.ok(Math.abs(serverNow() - Date.now()) < 5, 'within two seconds the browser keeps its own clock');
    noteServerDate('not a date', Date.now());
    assert.ok(Math.abs(serverNow() - Date.now()) < 5, 'a header it cannot read changes nothing');
  });
});
