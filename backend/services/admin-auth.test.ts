import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { BatonError } from '../../shared/errors.js';
import { sha256Hex } from '../crypto/secrets.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { ADMIN_SESSION_IDLE_MS, AdminAuth } from './admin-auth.js';
import { recordAssertionRefusal } from './assertion-gate.js';
import { EventLog } from './event-log.js';
import { InProcessBus } from '../cluster/bus.js';
import { tempDir } from '../temp-dir.js';

const ORIGIN = 'http://localhost:1';

function request(headers: Record<string, string>, method = 'GET'): IncomingMessage {
  return { method, headers } as unknown as IncomingMessage;
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    assert.ok(error instanceof BatonError, String(error));
    return error.code;
  }
}

describe('AdminAuth across nodes (state in the store only)', () => {
  let now = 1_000_000;
  const clock = () => now;
  const logger = pino({ level: 'silent' });
  const store = openSqliteStore({ dataDir: tempDir('baton-admin-auth-'), durability: 'normal' });
  after(() => store.close());
  const node = (shared?: InProcessBus) => {
    // Each node its own in-process bus unless told: what those tests show holds through the store alone.
    const bus = shared ?? new InProcessBus({ nodeId: `node-${Math.random()}`, logger });
    const events = new EventLog(store, clock, logger, bus);
    return { events, auth: new AdminAuth({ store, events, clock, origin: () => ORIGIN, logger, bus }) };
  };

  const admin = async () => {
    const operatorId = `op-${now}-${Math.random().toString(36).slice(2)}`;
    await store.operators.insert({
      id: operatorId,
      displayName: 'Ada',
      roles: ['admin'],
      webauthnUserId: operatorId,
      createdAt: now,
      failedAttempts: 0,
      revokedAt: null,
      revokedReason: null,
    });
    await store.operators.insertCredential({
      id: `cred-${operatorId}`,
      operatorId,
      publicKey: new Uint8Array([1]),
      counter: 0,
      transports: [],
      deviceBound: true,
      backedUp: false,
      aaguid: '00000000-0000-0000-0000-000000000000',
      attestationFmt: 'none',
      attestationTrust: 'none',
      registeredOnConsole: 'admin-console',
      createdAt: now,
      lastUsedAt: null,
      revokedAt: null,
      revokedReason: null,
      suspendedAt: null,
      suspendedReason: null,
    });
    return { operatorId, credentialId: `cred-${operatorId}` };
  };

  it('a bootstrap token works on every node until an admin passkey exists, then on none', async () => {
    const [a, b] = [node(), node()];
    const token = 'bat_bootstrap_token_for_tests';
    await store.adminTokens.insert(sha256Hex(token), 'bootstrap', now);
    const bearer = request({ authorization: `Bearer ${token}` });
    assert.equal((await a.auth.authenticate(bearer)).kind, 'bootstrap');
    assert.equal((await b.auth.authenticate(bearer)).kind, 'bootstrap');
    await admin();
    // Node B notices on its next request (nothing in memory said "enabled"), and retires it for all.
    assert.equal(await codeOf(b.auth.authenticate(bearer)), 'ADMIN_BOOTSTRAP_DISABLED');
    assert.equal(await codeOf(a.auth.authenticate(bearer)), 'ADMIN_BOOTSTRAP_DISABLED');
  });

  it('a session started on one node holds on another, and signing out on either ends it on both', async () => {
    const [a, b] = [node(), node()];
    const { operatorId, credentialId } = await admin();
    const { token, session } = await a.events.atomically((uow) =>
      a.auth.startSession(uow.store, operatorId, credentialId, true),
    );
    const cookie = request({ cookie: `baton_admin=${token}` });
    const principal = await b.auth.authenticate(cookie);
    assert.equal(principal.kind === 'admin' && principal.session.id, session.id);
    let closed = false;
    a.auth.holdStream(principal, () => (closed = true));
    assert.equal(await a.auth.stillAllowed(principal), true);
    await b.auth.end(session, 'signed-out');
    assert.equal(await codeOf(a.auth.authenticate(cookie)), 'ADMIN_SESSION_EXPIRED');
    // The stream on node A learns it at its next keep-alive check.
    assert.equal(await a.auth.stillAllowed(principal), false);
    assert.equal(closed, false, 'node A was not told; its keep-alive ends the stream');
  });

  it('ends an idle session once, whichever nodes sweep', async () => {
    const [a, b] = [node(), node()];
    const { operatorId, credentialId } = await admin();
    const { session } = await a.events.atomically((uow) =>
      a.auth.startSession(uow.store, operatorId, credentialId, false),
    );
    now += ADMIN_SESSION_IDLE_MS;
    await Promise.all([a.auth.sweep(), b.auth.sweep()]);
    const ended = await a.events.query({ type: 'admin-action', operator: operatorId, limit: 10 });
    assert.deepEqual(
      ended.filter((e) => e.detail?.adminSession === session.id).map((e) => e.reasons),
      [['admin-session-ended', 'idle-timeout']],
    );
  });

  it('refuses, on every node, a session whose passkey was suspended as a possible copy, even once reinstated', async () => {
    const [a, b] = [node(), node()];
    const { operatorId, credentialId } = await admin();
    // The copy signs in on node A: its sign-in is a fresh step-up.
    const { token } = await a.events.atomically((uow) =>
      a.auth.startSession(uow.store, operatorId, credentialId, true),
    );
    const cookie = request({ cookie: `baton_admin=${token}` }, 'POST');
    cookie.headers.origin = ORIGIN;
    const principal = await a.auth.authenticate(cookie);
    // The genuine key's lower counter suspends the passkey (here straight in the store: no event, no bus).
    assert.equal(await store.operators.suspendCredential(credentialId, now, 'possible-cloned-authenticator'), true);
    // Node B refuses the copy's next request, destructive or not: no step-up window is left to use.
    assert.equal(await codeOf(b.auth.authenticate(cookie)), 'ADMIN_SESSION_EXPIRED');
    assert.equal(await codeOf(a.auth.authenticate(cookie)), 'ADMIN_SESSION_EXPIRED');
    assert.equal(await a.auth.stillAllowed(principal), false, 'a live stream on node A ends at its keep-alive');
    // Reinstating the passkey (after review) does not bring the copy's session back.
    assert.equal(await store.operators.reinstateCredential(credentialId), true);
    assert.equal(await codeOf(b.auth.authenticate(cookie)), 'ADMIN_SESSION_EXPIRED');
    const ended = await a.events.query({ type: 'admin-action', operator: operatorId, limit: 10 });
    assert.deepEqual(
      ended.map((e) => e.reasons),
      [['admin-session-ended', 'credential-suspended']],
    );
  });

  // The timeout only turns a stream that never closes into a failure (it is not a speed bound).
  it(
    'suspending a passkey on one node ends its sessions at once and closes their live streams on every node',
    {
      timeout: 30_000,
    },
    async () => {
      const bus = new InProcessBus({ nodeId: 'cluster', logger });
      const [a, b] = [node(bus), node(bus)];
      const { operatorId, credentialId } = await admin();
      const { token } = await a.events.atomically((uow) =>
        a.auth.startSession(uow.store, operatorId, credentialId, true),
      );
      const principal = await a.auth.authenticate(request({ cookie: `baton_admin=${token}` }));
      // The copy reads the audit trail live on node A.
      const streamClosed = new Promise<void>((resolve) => a.auth.holdStream(principal, resolve));
      // The genuine key signs in on node B with a counter that went back: the passkey is suspended there.
      const credential = await store.operators.getCredential(credentialId);
      assert.ok(credential !== undefined);
      await recordAssertionRefusal(
        { events: b.events, clock },
        { credential, operatorId, onCounterRegression: 'suspend', countsTowardLockout: false },
        new BatonError('WEBAUTHN_COUNTER_REGRESSED', 'the counter went back'),
        () => Promise.resolve(),
      );
      // Node A's stream is closed by the pointer of the unit that ended the session on node B.
      await streamClosed;
      assert.equal(
        await codeOf(a.auth.authenticate(request({ cookie: `baton_admin=${token}` }))),
        'ADMIN_SESSION_EXPIRED',
      );
      const trail = await b.events.query({ operator: operatorId, limit: 10 });
      assert.deepEqual(
        trail.map((e) => [e.type, e.reasons]),
        [
          ['credential-counter-regressed', ['possible-cloned-authenticator', 'credential-suspended']],
          ['admin-action', ['admin-session-ended', 'credential-suspended']],
        ],
      );
    },
  );
});
