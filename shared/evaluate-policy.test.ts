import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SIGN_IN_ACTION, effectiveMaxSessionSeconds, evaluatePolicy, type DecisionContext } from './evaluate-policy.js';
import { DEFAULT_POLICY, type Policy } from './policy.js';

const NOW = 1_750_000_000_000;
const HOUR = 3600;

function context(overrides: Partial<DecisionContext> = {}): DecisionContext {
  return { channel: 'branch-kiosk', level: 'verified', authTime: NOW - 60_000, now: NOW, ...overrides };
}

function policyWith(edit: (policy: Policy) => void): Policy {
  const policy = structuredClone(DEFAULT_POLICY);
  edit(policy);
  return policy;
}

describe('evaluatePolicy', () => {
  it('allows an action when the level and the age of the authentication both satisfy it', () => {
    assert.deepEqual(evaluatePolicy(DEFAULT_POLICY, context(), 'payment.approve'), {
      outcome: 'allow',
      reasons: ['action-allowed'],
    });
  });

  it('asks for step-up to the required level when the session level is below it', () => {
    assert.deepEqual(evaluatePolicy(DEFAULT_POLICY, context({ level: 'presence' }), 'payment.approve'), {
      outcome: 'step-up',
      level: 'verified',
      maxAgeSeconds: 300,
      reasons: ['level-below-required'],
    });
  });

  it('asks for step-up when the authentication is older than the action allows', () => {
    const decision = evaluatePolicy(DEFAULT_POLICY, context({ authTime: NOW - 301_000 }), 'payment.approve');
    assert.deepEqual(decision, {
      outcome: 'step-up',
      level: 'verified',
      maxAgeSeconds: 300,
      reasons: ['authentication-too-old'],
    });
  });

  it('accepts an authentication exactly as old as the action allows', () => {
    const decision = evaluatePolicy(DEFAULT_POLICY, context({ authTime: NOW - 300_000 }), 'payment.approve');
    assert.equal(decision.outcome, 'allow');
  });

  it('gives both reasons when the level is too low and the authentication too old', () => {
    const decision = evaluatePolicy(
      DEFAULT_POLICY,
      context({ level: 'presence', authTime: NOW - 3_600_000 }),
      'address.change',
    );
    assert.equal(decision.outcome, 'step-up');
    assert.deepEqual(decision.reasons, ['level-below-required', 'authentication-too-old']);
  });

  it('asks for step-up when nobody is authenticated', () => {
    const decision = evaluatePolicy(DEFAULT_POLICY, context({ level: null, authTime: null }), 'customer.view');
    assert.deepEqual(decision, {
      outcome: 'step-up',
      level: 'presence',
      maxAgeSeconds: 12 * HOUR,
      reasons: ['not-authenticated'],
    });
  });

  it('denies an action the policy does not name, including inherited object keys', () => {
    for (const action of ['wire.transfer', 'constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      assert.deepEqual(evaluatePolicy(DEFAULT_POLICY, context(), action), {
        outcome: 'deny',
        reasons: ['action-unknown'],
      });
    }
  });

  it('denies on a channel the policy does not define, for actions and sign-in alike', () => {
    for (const action of ['customer.view', SIGN_IN_ACTION]) {
      assert.deepEqual(evaluatePolicy(DEFAULT_POLICY, context({ channel: 'home-office' }), action), {
        outcome: 'deny',
        reasons: ['channel-unknown'],
      });
    }
    for (const channel of ['constructor', 'toString', '__proto__']) {
      for (const action of ['customer.view', SIGN_IN_ACTION]) {
        assert.deepEqual(evaluatePolicy(DEFAULT_POLICY, context({ channel }), action), {
          outcome: 'deny',
          reasons: ['channel-unknown'],
        });
      }
    }
  });

  it('denies an action restricted to other channels, whatever the level', () => {
    const policy = policyWith((p) => {
      p.actions['cash.drawer-open'] = { level: 'presence', maxAgeSeconds: 60, channels: ['branch-kiosk'] };
    });
    assert.equal(evaluatePolicy(policy, context({ channel: 'branch-kiosk' }), 'cash.drawer-open').outcome, 'allow');
    assert.deepEqual(
      evaluatePolicy(policy, context({ channel: 'contact-centre', level: 'hardware' }), 'cash.drawer-open'),
      { outcome: 'deny', reasons: ['action-not-on-channel'] },
    );
  });

  it('denies rather than asks for step-up when the channel cannot reach the required level', () => {
    const policy = policyWith((p) => {
      p.channels['branch-kiosk'] = { ...p.channels['branch-kiosk']!, allowedLevels: ['presence', 'verified'] };
      p.actions['vault.open'] = { level: 'hardware', maxAgeSeconds: 60 };
    });
    assert.deepEqual(evaluatePolicy(policy, context({ level: 'presence' }), 'vault.open'), {
      outcome: 'deny',
      reasons: ['level-unreachable-on-channel'],
    });
  });

  it('denies once the session is older than the channel allows', () => {
    const started = (ageSeconds: number) => context({ sessionStartedAt: NOW - ageSeconds * 1000 });
    assert.equal(evaluatePolicy(DEFAULT_POLICY, started(12 * HOUR), 'customer.view').outcome, 'allow');
    assert.deepEqual(evaluatePolicy(DEFAULT_POLICY, started(12 * HOUR + 1), 'customer.view'), {
      outcome: 'deny',
      reasons: ['session-lifetime-exceeded'],
    });
  });

  it('caps an AAL3 session at 12 hours even when the channel allows longer (NIST 800-63B rev 4)', () => {
    const policy = policyWith((p) => {
      p.channels['branch-kiosk'] = { ...p.channels['branch-kiosk']!, maxSessionSeconds: 48 * HOUR };
    });
    const thirteenHours = { sessionStartedAt: NOW - 13 * HOUR * 1000 };
    assert.deepEqual(evaluatePolicy(policy, context({ level: 'hardware', ...thirteenHours }), 'customer.view'), {
      outcome: 'deny',
      reasons: ['session-lifetime-exceeded'],
    });
    assert.equal(
      evaluatePolicy(policy, context({ level: 'verified', ...thirteenHours }), 'customer.view').outcome,
      'allow',
    );
    assert.equal(
      evaluatePolicy(policy, context({ level: 'verified', sessionStartedAt: NOW - 25 * HOUR * 1000 }), 'customer.view')
        .outcome,
      'deny',
    );
  });

  it('computes the effective session lifetime as the smaller of the channel limit and the NIST cap', () => {
    const policy = policyWith((p) => {
      p.channels['branch-kiosk'] = { ...p.channels['branch-kiosk']!, maxSessionSeconds: 48 * HOUR };
    });
    assert.equal(effectiveMaxSessionSeconds(policy, 'branch-kiosk', 'hardware'), 12 * HOUR);
    assert.equal(effectiveMaxSessionSeconds(policy, 'branch-kiosk', 'verified'), 24 * HOUR);
    assert.equal(effectiveMaxSessionSeconds(policy, 'branch-kiosk', 'presence'), 48 * HOUR);
    assert.equal(effectiveMaxSessionSeconds(DEFAULT_POLICY, 'branch-kiosk', 'presence'), 12 * HOUR);
    assert.equal(effectiveMaxSessionSeconds(DEFAULT_POLICY, 'home-office', 'presence'), null);
    assert.equal(effectiveMaxSessionSeconds(DEFAULT_POLICY, 'constructor', 'presence'), null);
  });

  it('allows sign-in at a level the channel accepts and refuses one it does not', () => {
    assert.deepEqual(evaluatePolicy(DEFAULT_POLICY, context({ level: 'presence' }), SIGN_IN_ACTION), {
      outcome: 'allow',
      reasons: ['sign-in-allowed'],
    });
    assert.deepEqual(
      evaluatePolicy(DEFAULT_POLICY, context({ channel: 'shared-console', level: 'presence' }), SIGN_IN_ACTION),
      { outcome: 'deny', reasons: ['level-not-allowed-on-channel'] },
    );
    assert.equal(
      evaluatePolicy(DEFAULT_POLICY, context({ channel: 'shared-console', level: 'verified' }), SIGN_IN_ACTION).outcome,
      'allow',
    );
    assert.deepEqual(evaluatePolicy(DEFAULT_POLICY, context({ level: null, authTime: null }), SIGN_IN_ACTION), {
      outcome: 'deny',
      reasons: ['not-authenticated'],
    });
  });

  it('does not modify the policy it evaluates', () => {
    const policy = policyWith((p) => {
      p.channels['branch-kiosk'] = { ...p.channels['branch-kiosk']!, allowedLevels: ['verified', 'presence'] };
    });
    const before = structuredClone(policy);
    evaluatePolicy(policy, context({ level: 'presence' }), 'payment.approve');
    evaluatePolicy(policy, context(), SIGN_IN_ACTION);
    assert.deepEqual(policy, before);
  });
});
