import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import type { StoredEvent } from '../../shared/events.js';
import { SiemConfigSchema, isLoopbackHost } from './config.js';
import { toOcsf } from './ocsf.js';
import { SyslogTransport, formatSyslog, frame, type SyslogTarget } from './syslog.js';
import { stall } from '../test-kit.js';

function stored(overrides: Partial<StoredEvent>): StoredEvent {
  return {
    id: '0b3f6d1e-9a55-4c1e-8f7d-2f4d6f0a9b11',
    seq: 7,
    time: Date.UTC(2026, 11, 4, 9, 30),
    type: 'session-established',
    subject: { operator: 'op-ada', console: 'kiosk-1', session: 'ses-1' },
    assurance: { level: 'verified', aal: 2, acr: 'phr', amr: ['hwk', 'user', 'mfa'], authTime: 1 },
    outcome: 'success',
    reasons: [],
    prevHash: '0'.repeat(64),
    origin: 'backend',
    hash: 'a'.repeat(64),
    receivedAt: Date.UTC(2026, 11, 4, 9, 30, 1),
    integrity: [],
    cursor: 42,
    ...overrides,
  };
}

const context = { productVersion: '0.1.0' };

describe('OCSF records', () => {
  it('a sign-in is an Authentication logon with the operator, console, session and MFA', () => {
    const record = toOcsf(stored({}), context);
    assert.equal(record.class_uid, 3002);
    assert.equal(record.type_uid, 300201);
    assert.equal(record['status_id'], 1);
    assert.equal(record['is_mfa'], true);
    assert.deepEqual(record['user'], { uid: 'op-ada', type_id: 1, type: 'User' });
    assert.equal((record['device'] as { uid: string }).uid, 'kiosk-1');
    assert.equal(record.metadata.uid, '0b3f6d1e-9a55-4c1e-8f7d-2f4d6f0a9b11');
    assert.equal(record.metadata.sequence, 42);
    assert.equal(record.time, Date.UTC(2026, 11, 4, 9, 30));
  });

  it('every end of a session is a logoff, and a revoked passkey disables an MFA factor', () => {
    for (const type of ['session-ended', 'session-expired', 'session-revoked'] as const) {
      assert.equal(toOcsf(stored({ type }), context).type_uid, 300202, type);
    }
    assert.equal(toOcsf(stored({ type: 'session-locked' }), context).type_uid, 300299, 'a lock is not a logoff');
    const revoked = toOcsf(stored({ type: 'credential-change', detail: { change_type: 'revoke' } }), context);
    assert.equal(revoked.type_uid, 300111);
    const registered = toOcsf(stored({ type: 'credential-change', detail: { change_type: 'create' } }), context);
    assert.equal(registered.type_uid, 300110);
  });

  it("keeps Baton's own fields, and a type with no OCSF class is a Base Event, not dropped", () => {
    const record = toOcsf(
      stored({ type: 'policy-changed', subject: {}, outcome: 'info', reasons: ['published'], detail: { version: 3 } }),
      context,
    );
    assert.equal(record.class_uid, 0);
    assert.equal(record.type_uid, 99);
    const baton = (record['unmapped'] as { baton: Record<string, unknown> }).baton;
    assert.equal(baton['type_uri'], 'urn:baton:event:policy-changed');
    assert.deepEqual(baton['detail'], { version: 3 });
    assert.deepEqual(baton['reasons'], ['published']);
  });

  it('a SCIM or admin change is an Account Change only for a reason it names and with an operator', () => {
    // test/integration/siem-account-changes.test.ts drives each mapped change through the real backend.
    const scim = (reasons: string[], subject: StoredEvent['subject']) =>
      toOcsf(stored({ type: 'scim-provisioning', outcome: 'success', reasons, subject }), context).type_uid;
    assert.equal(scim(['user-deactivated'], { operator: 'op-ada' }), 300105);
    assert.equal(scim(['group-created'], {}), 99, 'a Group names no operator');
    assert.equal(scim(['user-deactivated'], {}), 99, 'Account Change is about a user');
    assert.equal(scim(['constructor'], { operator: 'op-ada' }), 99, 'an unknown reason, even an Object key');
    assert.equal(scim([], { operator: 'op-ada' }), 99);
    const admin = (reasons: string[]) =>
      toOcsf(stored({ type: 'admin-action', outcome: 'success', reasons, subject: { operator: 'op-ada' } }), context)
        .type_uid;
    assert.equal(admin(['operator-unlocked']), 300112);
    assert.equal(admin(['revoke-operator']), 99, 'operator-revoked is the Disable');
  });

  it('a refused console event and an integrity finding are high severity; a failed sign-in is a failure', () => {
    assert.equal(toOcsf(stored({ integrity: ['refused'] }), context)['severity_id'], 4);
    assert.equal(toOcsf(stored({ type: 'integrity-chain-broken' }), context)['severity_id'], 4);
    const failed = toOcsf(stored({ type: 'sign-in-failed', outcome: 'failure' }), context);
    assert.equal(failed['status_id'], 2);
    assert.equal(failed['severity_id'], 3);
  });
});

describe('syslog messages (RFC 5424, octet-counted)', () => {
  it('frames by byte length, not character count', () => {
    const framed = frame('Zoë');
    assert.equal(framed.toString('utf8'), '4 Zoë');
  });

  it('writes PRI from facility and severity, MSGID from the event type, the JSON after a BOM', () => {
    const message = formatSyslog(toOcsf(stored({ type: 'sign-in-failed', outcome: 'failure' }), context), {
      facility: 10,
      appName: 'baton',
      host: 'node one',
      procId: '99',
    });
    assert.match(message, /^<84>1 2026-12-04T09:30:00\.000Z node_one baton 99 sign-in-failed - \uFEFF\{/);
    const json = JSON.parse(message.slice(message.indexOf('\uFEFF') + 1)) as { class_uid: number };
    assert.equal(json.class_uid, 3002);
  });
});

async function listening(server: Server): Promise<SyslogTarget> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { host: '127.0.0.1', port, tls: false, facility: 10, appName: 'baton', settleMs: 20, connectTimeoutMs: 200 };
}

describe('the syslog transport', () => {
  it('a connection the kernel completed while the process stalled past the connect timeout is used, not refused', async () => {
    let received = '';
    const sockets: Socket[] = [];
    const server = createServer((socket) => {
      sockets.push(socket);
      socket.on('data', (data) => (received += String(data)));
    });
    const transport = new SyslogTransport(await listening(server));
    try {
      const sending = transport.send([toOcsf(stored({}), context)]);
      stall(600); // the 200 ms connect deadline passes while nothing runs; the kernel accepts meanwhile
      await sending;
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.match(received, /^\d+ <\d+>1 .* session-established - \uFEFF\{/);
    } finally {
      await transport.close();
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });

  it('a receiver that never completes the handshake still fails after about the connect timeout', async () => {
    const sockets: Socket[] = [];
    const server = createServer((socket) => sockets.push(socket)); // accepts TCP, never answers the TLS hello
    const transport = new SyslogTransport({ ...(await listening(server)), tls: {} });
    try {
      const started = performance.now();
      await assert.rejects(
        transport.send([toOcsf(stored({}), context)]),
        /no connection to syslog\+tls:\/\/127\.0\.0\.1:\d+ within 200 ms/,
      );
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 190 && elapsed < 1_000, `failed after ${Math.round(elapsed)} ms`);
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });
});

describe('the siem configuration', () => {
  it('takes TLS syslog and https collectors anywhere, unencrypted only on this host', () => {
    const parsed = SiemConfigSchema.parse({
      sinks: [
        { name: 'soc', kind: 'syslog', host: 'siem.bank.internal' },
        { name: 'relay', kind: 'syslog', host: '127.0.0.1', port: 514, tls: false },
        { name: 'lake', kind: 'http', url: 'https://collector.bank.internal/ocsf' },
        { name: 'local', kind: 'http', url: 'http://localhost:8088/ocsf' },
      ],
    });
    const first = parsed.sinks[0];
    assert.equal(first?.kind === 'syslog' ? first.port : 0, 6514);
    assert.equal(first?.kind === 'syslog' ? first.facility : 0, 10);
    assert.equal(isLoopbackHost('127.0.0.2'), true);
    assert.equal(isLoopbackHost('10.0.0.1'), false);
  });

  it('refuses plain transport to another host, a half client certificate and two sinks of one name', () => {
    const refused = [
      { sinks: [{ name: 'soc', kind: 'syslog', host: '10.0.0.5', tls: false }] },
      { sinks: [{ name: 'lake', kind: 'http', url: 'http://collector.bank.internal/ocsf' }] },
      { sinks: [{ name: 'soc', kind: 'syslog', host: 'siem', tls: { certFile: '/etc/baton/client.pem' } }] },
      {
        sinks: [
          { name: 'soc', kind: 'syslog', host: 'a' },
          { name: 'soc', kind: 'syslog', host: 'b' },
        ],
      },
      { sinks: [{ name: 'Bad Name', kind: 'syslog', host: 'a' }] },
    ];
    for (const config of refused)
      assert.equal(SiemConfigSchema.safeParse(config).success, false, JSON.stringify(config));
  });
});
