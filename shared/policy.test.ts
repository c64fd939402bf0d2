import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LEVEL_PROFILES } from './levels.js';
import { DEFAULT_POLICY, formatPath, validatePolicy, type Policy } from './policy.js';

// Drafts are edited loosely, as an admin's JSON would be.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Draft = any;

function draft(edit: (policy: Draft) => void): unknown {
  const policy: Draft = structuredClone(DEFAULT_POLICY);
  edit(policy);
  return policy;
}

function pathsOf(input: unknown): string[] {
  const result = validatePolicy(input);
  assert.equal(result.ok, false, 'expected the policy to be refused');
  return result.ok ? [] : result.issues.map((i) => i.path);
}

describe('validatePolicy', () => {
  it('accepts the NIST-based default policy unchanged', () => {
    const result = validatePolicy(DEFAULT_POLICY);
    assert.equal(result.ok, true);
    assert.deepEqual(result.ok && result.policy, DEFAULT_POLICY);
  });

  it('accepts the default policy after a JSON round trip, as the admin API receives it', () => {
    assert.equal(validatePolicy(JSON.parse(JSON.stringify(DEFAULT_POLICY))).ok, true);
  });

  it('points at the exact field of a channel that is out of range', () => {
    assert.deepEqual(pathsOf(draft((p) => (p.channels['branch-kiosk'].idleLockSeconds = 2))), [
      'channels.branch-kiosk.idleLockSeconds',
    ]);
    assert.deepEqual(pathsOf(draft((p) => (p.channels['contact-centre'].maxSessions = 0))), [
      'channels.contact-centre.maxSessions',
    ]);
    assert.deepEqual(pathsOf(draft((p) => (p.channels['shared-console'].tokenTtlSeconds = 1.5))), [
      'channels.shared-console.tokenTtlSeconds',
    ]);
  });

  it('points at the array element that is wrong', () => {
    assert.deepEqual(pathsOf(draft((p) => (p.channels['branch-kiosk'].allowedLevels = ['presence', 'gold']))), [
      'channels.branch-kiosk.allowedLevels[1]',
    ]);
    assert.deepEqual(
      pathsOf(draft((p) => (p.credentials.aaguidAllowList = ['CB69481E-8FF7-4039-93EC-0A2729A154A8']))),
      ['credentials.aaguidAllowList[0]'],
    );
  });

  it('refuses repeated levels on a channel', () => {
    const result = validatePolicy(draft((p) => (p.channels['branch-kiosk'].allowedLevels = ['verified', 'verified'])));
    assert.equal(result.ok, false);
    assert.deepEqual(!result.ok && result.issues, [
      { path: 'channels.branch-kiosk.allowedLevels', message: 'levels must not repeat' },
    ]);
  });

  it('refuses unknown members instead of ignoring them', () => {
    assert.deepEqual(pathsOf(draft((p) => (p.channels['branch-kiosk'].idleLockMinutes = 2))), [
      'channels.branch-kiosk',
    ]);
    assert.deepEqual(pathsOf(draft((p) => (p.emergencyAccess = true))), ['(root)']);
  });

  it('refuses badly named channels and actions at their key', () => {
    assert.deepEqual(pathsOf(draft((p) => (p.channels['Branch Kiosk'] = p.channels['branch-kiosk']))), [
      'channels.Branch Kiosk',
    ]);
    assert.deepEqual(pathsOf(draft((p) => (p.actions.approve = { level: 'verified', maxAgeSeconds: 60 }))), [
      'actions.approve',
    ]);
  });

  it('refuses an action restricted to a channel the policy does not define', () => {
    assert.deepEqual(pathsOf(draft((p) => (p.actions['payment.approve'].channels = ['branch-kiosk', 'call-center']))), [
      'actions.payment.approve.channels[1]',
    ]);
  });

  it('does not mistake an Object.prototype member for a defined channel', () => {
    assert.deepEqual(pathsOf(draft((p) => (p.actions['payment.approve'].channels = ['constructor']))), [
      'actions.payment.approve.channels[0]',
    ]);
  });

  it('requires at least one channel', () => {
    assert.deepEqual(pathsOf(draft((p) => (p.channels = {}))), ['channels']);
  });

  it('refuses input that is not a policy document at all', () => {
    assert.deepEqual(pathsOf(null), ['(root)']);
    assert.deepEqual(pathsOf('policy'), ['(root)']);
    assert.deepEqual(pathsOf({}), ['channels', 'credentials', 'actions', 'agent']);
  });

  it('refuses an idle lock longer than the NIST inactivity limit of the lowest level allowed', () => {
    const hardwareLimit = LEVEL_PROFILES.hardware.nistMaxIdleSeconds;
    const hardwareOnly = (idleLockSeconds: number) =>
      draft((p) => {
        p.channels['vault-room'] = { ...p.channels['branch-kiosk'], allowedLevels: ['hardware'], idleLockSeconds };
      });
    assert.equal(validatePolicy(hardwareOnly(hardwareLimit)).ok, true);
    const result = validatePolicy(hardwareOnly(hardwareLimit + 1));
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.issues.length, 1);
    assert.equal(!result.ok && result.issues[0]?.path, 'channels.vault-room.idleLockSeconds');
    assert.match((!result.ok && result.issues[0]?.message) || '', /NIST 800-63B inactivity limit of 900 s/);
  });

  it('judges the NIST idle limit by the lowest level, not the highest', () => {
    const mixed = (allowedLevels: string[]) =>
      draft((p) => {
        p.channels['vault-room'] = { ...p.channels['branch-kiosk'], allowedLevels, idleLockSeconds: 1800 };
      });
    assert.equal(validatePolicy(mixed(['verified', 'hardware'])).ok, true);
    assert.deepEqual(pathsOf(mixed(['hardware'])), ['channels.vault-room.idleLockSeconds']);
  });

  it("accepts an app's workspace origins as a browser writes them, and refuses anything else at its index", () => {
    const withOrigins = (workspaceOrigins: unknown) =>
      draft((p) => {
        p.apps = [{ audience: 'urn:bank:teller', name: 'Teller', actions: ['customer.view'], workspaceOrigins }];
      });
    for (const good of [
      ['https://teller.bank.example'],
      ['https://teller.bank.example:8443', 'http://127.0.0.1:8480', 'http://localhost:8472', 'http://[::1]:9000'],
    ]) {
      assert.equal(validatePolicy(withOrigins(good)).ok, true, JSON.stringify(good));
    }
    // An app without workspace origins stays valid (a policy published before the field): no page gets its tokens.
    assert.equal(validatePolicy(withOrigins(undefined)).ok, true);
    for (const bad of [
      'https://teller.bank.example/', // a trailing slash is not part of an origin
      'https://teller.bank.example/app',
      'http://teller.bank.example', // plain http off loopback
      'https://Teller.bank.example', // URL.origin is lower case
      'https://teller.bank.example:443', // URL.origin leaves out the default port
      'https://*.bank.example',
      'urn:bank:teller',
    ]) {
      assert.deepEqual(pathsOf(withOrigins([bad])), ['apps[0].workspaceOrigins[0]'], bad);
    }
    assert.deepEqual(pathsOf(withOrigins([])), ['apps[0].workspaceOrigins']);
  });

  it('returns a policy that is a copy the caller cannot confuse with the input', () => {
    const input = draft(() => undefined) as Policy;
    const result = validatePolicy(input);
    assert.equal(result.ok, true);
    assert.notEqual(result.ok && result.policy, input);
  });
});

describe('formatPath', () => {
  it('writes members with dots, array indexes in brackets, and the root as "(root)"', () => {
    assert.equal(formatPath(['channels', 'branch-kiosk', 'idleLockSeconds']), 'channels.branch-kiosk.idleLockSeconds');
    assert.equal(formatPath(['actions', 'payment.approve', 'channels', 0]), 'actions.payment.approve.channels[0]');
    assert.equal(formatPath([]), '(root)');
  });
});
