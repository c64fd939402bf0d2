import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestBackend, type TestBackend } from '../helpers/backend-harness.js';
import { checkAnswer, checkedRoutes } from '../helpers/route-contract.js';

describe('answers are checked against the route table', () => {
  let t: TestBackend;
  before(async () => {
    t = await startTestBackend();
  });
  after(() => t.stop());

  it('checks every answer a test helper receives against its route', async () => {
    await t.admin.ok('GET', '/v1/admin/operators');
    await t.admin.ok('POST', '/v1/admin/operators', { displayName: 'Jane Doe' });
    await t.admin.request('GET', '/v1/admin/operators/nobody');
    assert.ok((checkedRoutes.get('adminOperators') ?? 0) >= 1);
    assert.ok((checkedRoutes.get('adminOperatorCreate') ?? 0) >= 1);
    assert.ok((checkedRoutes.get('adminOperator') ?? 0) >= 1, 'a refusal is checked against the error body');
  });

  it('fails the test that receives an answer drifting from its declared schema', () => {
    assert.throws(
      () => checkAnswer('GET', '/v1/admin/operators', 200, { operators: [{ id: 'op_1', displayName: 7 }] }),
      /does not match its declared schema \(route adminOperators\).*operators\.0\.displayName/,
    );
    assert.throws(
      () => checkAnswer('POST', '/v1/sessions/ses_1/end', 404, { error: { code: 'NOT_A_CODE', message: 'x' } }),
      /route sessionEnd/,
    );
    assert.doesNotThrow(() => checkAnswer('GET', '/v1/no-such-endpoint', 404, {}));
  });
});
