// @peculiar/x509 needs the reflect-metadata polyfill, which SimpleWebAuthn's helpers load first.
import '@simplewebauthn/server/helpers';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { startTestBackend, TestConsole, type Json, type TestBackend } from '../helpers/backend-harness.js';
import { enrolOperator, signIn } from '../helpers/operator-flow.js';
import { tempDir } from '../helpers/temp-dir.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** A throwaway server certificate for `siem.test` and the CA file a sink trusts it with. */
async function serverCertificate(dir: string): Promise<{ caFile: string; cert: string; key: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=siem.test',
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 24 * 3600_000),
    signingAlgorithm: alg,
    keys,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'siem.test' }])],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)?.join('\n') ?? ''}\n-----END PRIVATE KEY-----\n`;
  const caFile = join(dir, 'siem-ca.pem');
  writeFileSync(caFile, cert.toString('pem'));
  return { caFile, cert: cert.toString('pem'), key };
}

/** One parsed RFC 5424 message: header fields and the OCSF record it carries. */
interface SyslogMessage {
  pri: number;
  appName: string;
  msgId: string;
  record: Json;
}

/**
 * A syslog-over-TLS receiver (RFC 5425, octet-counting framing) that parses strictly: a frame whose
 * length prefix does not match, or a message that is not RFC 5424 with a JSON body, fails the test.
 * `resetAfter`: the first connection is reset after that many messages (a receiver that crashes).
 */
async function syslogReceiver(tls: { cert: string; key: string }, resetAfter?: number) {
  const messages: SyslogMessage[] = [];
  const problems: string[] = [];
  let connections = 0;
  const server: TlsServer = createTlsServer({ cert: tls.cert, key: tls.key }, (socket) => {
    const connection = ++connections;
    let buffer = Buffer.alloc(0);
    let seenHere = 0;
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const space = buffer.indexOf(0x20);
        if (space < 0) return;
        const length = Number(buffer.subarray(0, space).toString('ascii'));
        if (!Number.isInteger(length) || length <= 0) {
          problems.push(`bad length prefix "${buffer.subarray(0, space).toString('latin1')}"`);
          socket.destroy();
          return;
        }
        if (buffer.length < space + 1 + length) return;
        const text = buffer.subarray(space + 1, space + 1 + length).toString('utf8');
        buffer = buffer.subarray(space + 1 + length);
        const match = /^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) - \uFEFF(\{.*\})$/s.exec(text);
        if (match === null) {
          problems.push(`not an RFC 5424 message with a JSON body: ${text.slice(0, 80)}`);
          continue;
        }
        if (Number.isNaN(Date.parse(match[2] ?? ''))) problems.push(`bad timestamp ${match[2]}`);
        if (connection === 1 && resetAfter !== undefined && seenHere >= resetAfter) {
          socket.destroy();
          return;
        }
        seenHere++;
        messages.push({
          pri: Number(match[1]),
          appName: match[4] ?? '',
          msgId: match[6] ?? '',
          record: JSON.parse(match[7] ?? '{}') as Json,
        });
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    messages,
    problems,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Resolves once `condition` holds; fails the test after `ms` with `what`. */
async function eventually(condition: () => boolean | Promise<boolean>, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(what());
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function storedCursors(t: TestBackend): Promise<number[]> {
  return (await t.backend.events.query({ limit: 100_000 })).map((event) => event.cursor);
}

/** The first appearance of each cursor, in arrival order (at least once: a re-sent batch repeats some). */
function firstSeen(cursors: number[]): number[] {
  const seen = new Set<number>();
  return cursors.filter((cursor) => (seen.has(cursor) ? false : (seen.add(cursor), true)));
}

/** A console, an operator with a passkey, and a sign-in: the events a SIEM rule looks for. */
async function someActivity(t: TestBackend) {
  const kiosk = await TestConsole.enrol(t.url, t.admin);
  const { operatorId, authenticator } = await enrolOperator(t.admin, kiosk, { displayName: 'Ada Teller' });
  const signedIn = await signIn(kiosk, authenticator);
  assert.equal(signedIn.status, 200);
  return { kiosk, operatorId, session: (signedIn.body as Json).session.id as string };
}

describe('the continuous export to the SIEM', () => {
  const stops: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  });

  it('sends every stored event over TLS as one octet-counted RFC 5424 message with its OCSF record, in store order', async () => {
    const dir = tempDir('baton-siem-');
    const tls = await serverCertificate(dir);
    const receiver = await syslogReceiver(tls);
    stops.push(receiver.close);
    const t = await startTestBackend({
      siem: {
        sinks: [
          {
            name: 'soc',
            kind: 'syslog',
            host: '127.0.0.1',
            port: receiver.port,
            tls: { caFile: tls.caFile, servername: 'siem.test' },
            settleMs: 20,
          },
        ],
      },
    });
    stops.push(() => t.stop());
    const { operatorId, kiosk, session } = await someActivity(t);

    const stored = await storedCursors(t);
    await eventually(
      () => receiver.messages.length >= stored.length,
      15_000,
      () => `the receiver got ${receiver.messages.length} of ${stored.length} events`,
    );
    assert.deepEqual(receiver.problems, []);
    const cursors = receiver.messages.map((m) => m.record.metadata.sequence as number);
    assert.deepEqual(cursors, stored, 'every stored event once, in cursor order');

    const established = receiver.messages.find((m) => m.record.unmapped.baton.type === 'session-established');
    assert.ok(established, 'the sign-in reached the SIEM');
    assert.equal(established.msgId, 'session-established');
    assert.equal(established.appName, 'baton');
    assert.equal(established.pri, 10 * 8 + 6, 'authpriv.info');
    assert.equal(established.record.class_uid, 3002);
    assert.equal(established.record.activity_id, 1);
    assert.equal(established.record.type_uid, 300201);
    assert.equal(established.record.status_id, 1);
    assert.equal(established.record.user.uid, operatorId);
    assert.equal(established.record.device.uid, kiosk.id);
    assert.equal(established.record.session.uid, session);
    assert.equal(established.record.unmapped.baton.type_uri.endsWith('/caep/event-type/session-established'), true);
    const created = receiver.messages.find((m) => m.record.unmapped.baton.type === 'operator-created');
    assert.equal(created?.record.class_uid, 3001, 'operator changes are Account Change records');

    // The cursor moves once the last batch has settled (settleMs after it was written).
    const sinkView = async () =>
      ((await t.admin.ok('GET', '/v1/admin/siem')) as Json).sinks.find((s: Json) => s.name === 'soc') as Json;
    await eventually(
      async () => ((await sinkView()).cursor as number) >= stored.at(-1)!,
      10_000,
      () => 'the cursor did not reach the newest delivered event',
    );
    const soc = await sinkView();
    assert.equal(soc.target, `syslog+tls://127.0.0.1:${receiver.port}`);
    assert.ok(soc.delivered >= stored.length);
    assert.equal(soc.lastError, null);
  });

  it('a receiver that drops the connection mid-batch gets the batch again: nothing is lost', async () => {
    const dir = tempDir('baton-siem-');
    const tls = await serverCertificate(dir);
    const receiver = await syslogReceiver(tls, 3);
    stops.push(receiver.close);
    const t = await startTestBackend({
      siem: {
        sinks: [
          {
            name: 'soc',
            kind: 'syslog',
            host: '127.0.0.1',
            port: receiver.port,
            tls: { caFile: tls.caFile, servername: 'siem.test' },
            settleMs: 1000,
          },
        ],
      },
    });
    stops.push(() => t.stop());
    await someActivity(t);
    const stored = await storedCursors(t);
    await eventually(
      () => new Set(receiver.messages.map((m) => m.record.metadata.sequence as number)).size >= stored.length,
      20_000,
      () => `the receiver got ${receiver.messages.length} messages for ${stored.length} events`,
    );
    assert.ok(receiver.connections() >= 2, 'the exporter reconnected after the reset');
    assert.deepEqual(firstSeen(receiver.messages.map((m) => m.record.metadata.sequence as number)), stored);
    const status = (await t.admin.ok('GET', '/v1/admin/siem')) as Json;
    assert.match(status.sinks[0].lastError as string, /closed|reset|ECONNRESET/i, 'the admin sees why it was re-sent');
  });

  it('an HTTP collector that is down, then busy, then back gets every event in order; a restart resumes from the cursor', async () => {
    const dir = tempDir('baton-siem-');
    const tokenFile = join(dir, 'collector-token');
    writeFileSync(tokenFile, 'collector-secret-token\n', { mode: 0o600 });
    const received: number[] = [];
    const unauthorised: string[] = [];
    let busy = 0;
    const collector: HttpServer = createHttpServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        if (req.headers.authorization !== 'Bearer collector-secret-token') {
          unauthorised.push(String(req.headers.authorization));
          res.writeHead(401).end();
          return;
        }
        if (busy > 0) {
          busy--;
          res.writeHead(503, { 'retry-after': '0' }).end();
          return;
        }
        const records = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json[];
        assert.equal(req.headers['content-type'], 'application/json');
        for (const record of records) received.push(record.metadata.sequence as number);
        res.writeHead(202).end();
      });
    });
    // Down first: the port is known but nothing listens yet.
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const port = (collector.address() as AddressInfo).port;
    await new Promise<void>((resolve) => collector.close(() => resolve()));
    const sink = { name: 'collector', kind: 'http', url: `http://127.0.0.1:${port}/ingest?key=hidden`, tokenFile };
    const dataDir = tempDir('baton-siem-data-');
    let t = await startTestBackend({ dataDir, siem: { sinks: [sink] } });
    await someActivity(t);
    await eventually(
      async () => ((await t.admin.ok('GET', '/v1/admin/siem')) as Json).sinks[0].failures >= 1,
      10_000,
      () => 'the failed delivery was not shown',
    );
    const down = ((await t.admin.ok('GET', '/v1/admin/siem')) as Json).sinks[0];
    assert.equal(down.target, `http://127.0.0.1:${port}/ingest`, 'the target never shows the query string');
    assert.match(down.lastError as string, /ECONNREFUSED/);
    assert.equal(down.cursor, 0);
    assert.ok(down.lag > 0);

    busy = 2;
    const sockets = new Set<Socket>();
    collector.on('connection', (socket: Socket) => sockets.add(socket).size);
    await new Promise<void>((resolve) => collector.listen(port, '127.0.0.1', resolve));
    stops.push(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          collector.close(() => resolve());
        }),
    );
    const firstRun = await storedCursors(t);
    await eventually(
      () => firstSeen(received).length >= firstRun.length,
      30_000,
      () => `the collector got ${firstSeen(received).length} of ${firstRun.length} events`,
    );
    assert.equal(busy, 0, 'the busy answers were retried');
    assert.deepEqual(firstSeen(received), firstRun);
    await t.stop();

    // Restarted on the same data: it resumes where the collector's acknowledgements left it.
    const before = received.length;
    t = await startTestBackend({ dataDir, siem: { sinks: [sink] } }, { adminToken: t.admin.token });
    stops.push(() => t.stop());
    await someActivity(t);
    const all = await storedCursors(t);
    await eventually(
      () => firstSeen(received).length >= all.length,
      30_000,
      () => `after the restart the collector got ${firstSeen(received).length} of ${all.length} events`,
    );
    assert.deepEqual(firstSeen(received), all, 'nothing lost across the restart');
    assert.deepEqual(
      received.slice(before),
      all.slice(firstRun.length),
      'acknowledged batches are not sent again after a clean restart',
    );
    assert.deepEqual(unauthorised, [], 'every request carried the token from the file');
    // The cursor moves once the collector's answer is in: the admin sees the sink caught up.
    await eventually(
      async () => ((await t.admin.ok('GET', '/v1/admin/siem')) as Json).sinks[0].lag === 0,
      10_000,
      () => 'the sink did not show as caught up',
    );
    assert.equal(((await t.admin.ok('GET', '/v1/admin/siem')) as Json).sinks[0].failures, 0);
  });

  it('refuses an unencrypted sink to another host, and says which setting is wrong', async () => {
    await assert.rejects(
      startTestBackend({ siem: { sinks: [{ name: 'soc', kind: 'syslog', host: '10.1.2.3', tls: false }] } }),
      /siem\.sinks\[0\]\.tls: plain TCP/,
    );
    await assert.rejects(
      startTestBackend({ siem: { sinks: [{ name: 'soc', kind: 'http', url: 'http://collector.bank.internal/x' }] } }),
      /siem\.sinks\[0\]\.url: .*use https:/,
    );
  });
});
