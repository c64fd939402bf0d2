import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { BatonError } from '../../shared/errors.js';
import { sha256Hex } from '../crypto/secrets.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import { ADMIN_SESSION_IDLE_MS, AdminAuth } from './admin-auth.js';
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
  const node = () => {
    // Each node its own in-process bus: what these tests show holds through the store alone.
    const bus = new InProcessBus({ nodeId: `node-${Math.random()}`, logger });
    const events = new EventLog(store, clock, logger, bus);
    return { events, auth: new AdminAuth({ store, events, clock, origin: () => ORIGIN, logger, bus }) };
  };

  const admin = async () => {
    const operatorId = `op-${now}-${Math.random()}`;
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
});
