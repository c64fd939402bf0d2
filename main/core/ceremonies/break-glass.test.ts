import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { BatonError } from '../../../shared/errors.js';
import type { SignInOutcome } from '../session-manager.js';
import { breakGlassByCode, breakGlassBySupervisor, type BreakGlassDeps } from './break-glass.js';

const SESSION = {
  id: 'ses_bg',
  operatorId: 'fay',
  operatorName: 'Fay',
  consoleId: 'con_1',
  channel: 'branch-kiosk',
  level: 'presence' as const,
  aal: 1,
  acr: 'urn:baton:presence',
  amr: ['hwk'],
  authTime: 1,
  startedAt: 1,
  expiresAt: 900_001,
  state: 'active' as const,
};
const ASSERTION = {
  id: 'Y3JlZA',
  rawId: 'Y3JlZA',
  type: 'public-key',
  response: { clientDataJSON: 'e30', authenticatorData: 'AAAA', signature: 'AAAA' },
  clientExtensionResults: {},
};

describe('break-glass ceremony (agent side)', () => {
  let calls: [string, unknown, unknown][];
  let asked: unknown[];
  let signedIn: SignInOutcome[];
  let order: string[];
  let deps: BreakGlassDeps;
  let refuse: Partial<Record<string, BatonError>>;

  beforeEach(() => {
    calls = [];
    asked = [];
    signedIn = [];
    order = [];
    refuse = {};
    const started = {
      session: SESSION,
      token: 'tok',
      tokenExpiresAt: 300_000,
      breakGlass: {
        grantId: 'bg_1',
        actions: ['customer.view'],
        expiresAt: 900_001,
        method: 'supervisor-tap',
        approvedBy: 'operator:sam',
        approverName: 'Sam Patel',
      },
    };
    deps = {
      client: {
        call: ((route: string, params: unknown, body: unknown) => {
          calls.push([route, params, body]);
          const refusal = refuse[route];
          if (refusal !== undefined) return Promise.reject(refusal);
          if (route === 'breakGlassRequest') {
            return Promise.resolve({
              requestId: 'bgr_1',
              operatorId: 'fay',
              options: { challenge: 'Y2hhbGxlbmdlLTE2Ynl0ZXM' },
            });
          }
          return Promise.resolve(started);
        }) as BreakGlassDeps['client']['call'],
      },
      sessions: {
        all: [
          { id: 'ses_lu', state: 'active' },
          { id: 'ses_mo', state: 'locked' },
        ] as BreakGlassDeps['sessions']['all'],
        signedIn: (outcome: SignInOutcome) => {
          order.push('signed-in');
          signedIn.push(outcome);
          return { id: outcome.session.id } as ReturnType<BreakGlassDeps['sessions']['signedIn']>;
        },
      },
      port: {
        getAssertion: (request) => {
          asked.push(request);
          return Promise.resolve(ASSERTION as never);
        },
        createCredential: () => Promise.reject(new Error('not in this test')),
      },
      settle: () => order.push('settled'),
    };
  });

  test('a supervisor’s tap: request, the tap named for the operator, approval; the capped session comes to the front', async () => {
    const { session, breakGlass } = await breakGlassBySupervisor(deps, 'fay');
    assert.deepEqual(
      calls.map(([route, params]) => [route, params]),
      [
        ['breakGlassRequest', {}],
        ['breakGlassApprove', { id: 'bgr_1' }],
      ],
    );
    assert.deepEqual(calls[0]?.[2], { operatorId: 'fay' });
    assert.deepEqual((calls[1]?.[2] as { response: unknown }).response, ASSERTION);
    assert.equal((asked[0] as { purpose: string }).purpose, 'break-glass');
    assert.equal((asked[0] as { operatorName: string }).operatorName, 'fay');
    assert.equal(session.id, 'ses_bg');
    // The supervisor's name comes with the grant: the kiosk names them without a lookup (issue 12).
    assert.deepEqual(breakGlass, {
      method: 'supervisor-tap',
      approvedBy: 'operator:sam',
      approverName: 'Sam Patel',
      actions: ['customer.view'],
      expiresAt: 900_001,
    });
    // The backend suspended the console's active sessions; the capped session rests on no passkey.
    assert.deepEqual(signedIn[0]?.suspended, ['ses_lu']);
    assert.deepEqual(signedIn[0]?.credential, { id: 'bg_1', publicKey: '', counter: 0 });
    // Marked from its first status on: the session carries its terms (issue 14: never read as a key tap).
    assert.deepEqual(signedIn[0]?.breakGlass, breakGlass);
    assert.deepEqual(order, ['settled', 'signed-in']);
  });

  test('a refused request asks nobody to tap, and starts nothing', async () => {
    refuse.breakGlassRequest = new BatonError('BREAK_GLASS_LIMIT_REACHED', 'limit');
    await assert.rejects(breakGlassBySupervisor(deps, 'fay'), { code: 'BREAK_GLASS_LIMIT_REACHED' });
    assert.equal(asked.length, 0);
    assert.equal(signedIn.length, 0);
  });

  test('a cancelled tap is CEREMONY_CANCELLED and approves nothing', async () => {
    deps.port.getAssertion = () => Promise.reject(new Error('NotAllowedError'));
    await assert.rejects(breakGlassBySupervisor(deps, 'fay'), { code: 'CEREMONY_CANCELLED' });
    assert.deepEqual(
      calls.map(([route]) => route),
      ['breakGlassRequest'],
    );
    assert.equal(signedIn.length, 0);
  });

  test('a refused approval (the supervisor approving themselves) starts nothing', async () => {
    refuse.breakGlassApprove = new BatonError('BREAK_GLASS_SELF_APPROVAL', 'self');
    await assert.rejects(breakGlassBySupervisor(deps, 'fay'), { code: 'BREAK_GLASS_SELF_APPROVAL' });
    assert.equal(signedIn.length, 0);
  });

  test('IT’s one-time code: redeemed for the operator, no tap', async () => {
    const { breakGlass } = await breakGlassByCode(deps, 'fay', 'K7QM-2XHD-9PRA-WC4F');
    assert.deepEqual(calls, [['breakGlassRedeem', {}, { operatorId: 'fay', code: 'K7QM-2XHD-9PRA-WC4F' }]]);
    assert.equal(asked.length, 0);
    assert.equal(breakGlass.actions[0], 'customer.view');
  });
});
