import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { BatonError } from '../../shared/errors.js';
import { GENESIS_HASH, type AssuranceEvent } from '../../shared/events.js';
import { DEFAULT_POLICY } from '../../shared/policy.js';
import { CONSOLE_WS_PATH, MAX_MESSAGE_BYTES, type HelloMessage } from '../../shared/protocol.js';
import { BatonAgent } from '../../main/core/agent.js';
import { loadAgentConfig } from '../../main/core/agent-config.js';
import { hashEvent } from '../../main/core/event-outbox.js';
import { AgentRig, type SoftCeremonyPort } from '../helpers/agent-rig.js';
import { TEST_ORIGIN, type Json } from '../helpers/backend-harness.js';
import { consoleStream, integrityEvents } from '../helpers/console-stream.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import type { SecretStore } from '../../main/core/secret-store.js';

/**
 * An enrolled console whose operator made `decisions` policy decisions while the backend was out
 * of reach, then was shut down: its journal holds events the backend has never seen.
 */
async function consoleWithQueuedEvents(
  rig: AgentRig,
  decisions: number,
): Promise<{ dataDir: string; secrets: SecretStore; port: SoftCeremonyPort; consoleId: string; delivered: number }> {
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: rig.backend.backend.port });
  try {
    const { agent, port, secrets, dataDir } = await rig.agent({ backendUrl: proxy.url });
    const ada = await rig.operator(agent, port, 'Ada Teller');
    port.tap(ada.authenticator);
    await agent.tapIn();
    await rig.until(agent, (s) => s.outbox?.pending === 0, 'sign-in events delivered');
    const delivered = agent.status.outbox?.ackedSeq ?? 0;
    proxy.cut();
    await rig.until(agent, (s) => s.connection === 'offline', 'offline');
    for (let i = 0; i < decisions; i++) assert.equal((await agent.authorize('customer.view')).outcome, 'allow');
    const identity = agent.status.identity;
    assert.equal(identity.kind, 'enrolled');
    await agent.stop();
    return { dataDir, secrets, port, consoleId: identity.consoleId, delivered };
  } finally {
    await proxy.stop();
  }
}

function journalSegment(dataDir: string, consoleId: string): { dir: string; file: string; path: string } {
  const dir = join(dataDir, 'outbox', consoleId);
  const file = readdirSync(dir).find((f) => f.startsWith('segment-'));
  assert.ok(file !== undefined, 'the journal has a segment');
  return { dir, file, path: join(dir, file) };
}

/** Overwrites the middle of a journal line in place, as a bad disk block would: same length, not JSON any more. */
function damage(line: string): string {
  return line.slice(0, 30) + '\u0000'.repeat(line.length - 60) + line.slice(-30);
}

describe('bad input: a corrupted journal', () => {
  let rig: AgentRig;
  before(async () => {
    rig = await AgentRig.start();
  });
  after(() => rig.stop());

  it('starts anyway, says what it found, quarantines a copy and delivers every other event; the backend shows the hole as a gap', async () => {
    const { dataDir, secrets, port, consoleId, delivered } = await consoleWithQueuedEvents(rig, 20);
    const { dir, file, path } = journalSegment(dataDir, consoleId);
    const lines = readFileSync(path, 'utf8').split('\n');
    const lost = delivered + 10; // an event the backend has never seen
    const index = lines.findIndex((l) => l !== '' && (JSON.parse(l) as AssuranceEvent).seq === lost);
    const journaled = (JSON.parse(lines.at(-2) ?? '') as AssuranceEvent).seq;
    assert.ok(index > 0 && journaled > lost + 5, 'the damaged line is in the middle of the unsent events');
    lines[index] = damage(lines[index] ?? '');
    // …and a crash cut the last write short.
    writeFileSync(path, `${lines.join('\n')}{"id":"9a1c2e7b-55f0-4c`);

    const { agent } = await rig.agent({ dataDir, secrets, port });
    assert.equal(agent.status.identity.kind, 'enrolled', 'the agent starts');
    assert.deepEqual(agent.recovery?.corrupt, [{ file, line: index + 1, reason: 'not JSON' }]);
    assert.equal(agent.recovery?.tornTail, true);
    assert.equal(agent.recovery?.recovered, journaled - delivered - 1);
    assert.equal(agent.status.notice?.code, 'OUTBOX_DAMAGED');
    assert.match(agent.status.notice?.message ?? '', /1 unreadable line.*quarantine/);
    const quarantined = readdirSync(join(dir, 'quarantine'));
    assert.equal(quarantined.length, 1);
    assert.match(quarantined[0] ?? '', new RegExp(`^${file}\\.`));
    assert.ok(
      readFileSync(join(dir, 'quarantine', quarantined[0] ?? ''), 'utf8').includes(lines[index] ?? '-'),
      'IT gets the damaged line as it was on disk',
    );

    await rig.until(agent, (s) => s.connection === 'online' && s.outbox?.pending === 0, 'the journal flushed');
    const total = agent.status.outbox?.lastSeq ?? 0;
    assert.ok(total > journaled, 'the restarted agent went on numbering after the torn tail');
    const stored = await consoleStream(rig.backend.admin, consoleId);
    assert.deepEqual(
      stored.map((e) => e.seq),
      Array.from({ length: total }, (_, i) => i + 1).filter((seq) => seq !== lost),
      'every event but the unreadable one reached the backend, once, in order',
    );
    assert.deepEqual(
      stored.filter((e) => e.integrity.length > 0).map((e) => [e.seq, e.integrity]),
      [[lost + 1, ['sequence-gap']]],
      'the backend marks the event after the hole',
    );
    const findings = await integrityEvents(rig.backend.admin, consoleId);
    assert.deepEqual(
      findings.map((e) => [e.type, e.detail]),
      [['integrity-sequence-gap', { missingFrom: lost, missingTo: lost }]],
    );
    const report = (await rig.backend.admin.ok('GET', `/v1/admin/events/verify?origin=${consoleId}`)) as Json;
    assert.equal(report.intact, false);
    assert.deepEqual(
      [...new Set((report.problems as { seq: number }[]).map((p) => p.seq))],
      [lost + 1],
      'the chain is whole apart from the hole',
    );
    await agent.stop();
  });

  it('a damaged last line: new events do not reuse its number, so the backend sees the loss', async () => {
    const { dataDir, secrets, port, consoleId } = await consoleWithQueuedEvents(rig, 5);
    const { path } = journalSegment(dataDir, consoleId);
    const lines = readFileSync(path, 'utf8').split('\n');
    const lost = (JSON.parse(lines.at(-2) ?? '') as AssuranceEvent).seq;
    lines[lines.length - 2] = damage(lines.at(-2) ?? '');
    writeFileSync(path, lines.join('\n'));

    const { agent } = await rig.agent({ dataDir, secrets, port });
    assert.equal(agent.recovery?.corrupt.length, 1);
    await rig.until(agent, (s) => s.connection === 'online' && s.outbox?.pending === 0, 'the journal flushed');
    const total = agent.status.outbox?.lastSeq ?? 0;
    assert.ok(total > lost);
    const stored = await consoleStream(rig.backend.admin, consoleId);
    assert.deepEqual(
      stored.map((e) => e.seq),
      Array.from({ length: total }, (_, i) => i + 1).filter((seq) => seq !== lost),
      'the events after the restart are numbered past the unreadable one and all stored',
    );
    assert.deepEqual(
      (await integrityEvents(rig.backend.admin, consoleId)).map((e) => [e.type, e.detail]),
      [['integrity-sequence-gap', { missingFrom: lost, missingTo: lost }]],
    );
    await agent.stop();
  });
});

describe('bad input: a configuration file with wrong types', () => {
  // main/core/agent-config.test.ts covers which fields are named; here: that the message says what
  // was expected, for every kind of field, and for a file that is not an object at all.
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const load = (content: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-bad-config-'));
    dirs.push(dir);
    const file = join(dir, 'agent.json');
    writeFileSync(file, content);
    try {
      loadAgentConfig({ platform: 'linux', env: { BATON_AGENT_CONFIG: file }, packaged: false });
    } catch (error) {
      assert.ok(error instanceof BatonError, String(error));
      return { file, error };
    }
    assert.fail('a bad configuration file was accepted');
  };

  it('names the file, each field and the type it expected', () => {
    const { file, error } = load(
      JSON.stringify({
        backendUrl: 8470,
        channel: ['branch-kiosk'],
        rpId: { host: 'localhost' },
        workspaceAppUrl: 'https://teller.bank.example/',
        logLevel: 3,
        kiosk: 'yes',
        dataDir: false,
      }),
    );
    assert.equal(error.code, 'SCHEMA_INVALID');
    assert.ok(error.message.includes(file), error.message);
    const expected: [string, RegExp][] = [
      ['backendUrl', /expected string, received number/],
      ['channel', /expected string, received array/],
      ['rpId', /expected string, received object/],
      ['logLevel', /expected one of "fatal"\|"error"\|"warn"\|"info"\|"debug"\|"trace"\|"silent"/],
      ['kiosk', /expected boolean, received string/],
      ['dataDir', /expected string, received boolean/],
    ];
    for (const [field, what] of expected) {
      const issue = error.issues?.find((i) => i.path === field);
      assert.ok(issue !== undefined, `${field} is named: ${error.message}`);
      assert.match(issue.message, what);
      assert.ok(error.message.includes(`${field}: ${issue.message}`), `the message says it: ${error.message}`);
    }
    assert.equal(error.issues?.length, expected.length, 'the good field is not blamed');
  });

  it('says a JSON object was expected when the file holds an array, a string or null', () => {
    for (const [content, received] of [
      ['["https://baton.bank.example"]', 'an array'],
      ['"https://baton.bank.example"', 'string'],
      ['null', 'null'],
    ] as const) {
      const { file, error } = load(content);
      assert.equal(error.code, 'SCHEMA_INVALID');
      assert.equal(
        error.message,
        `The agent configuration file ${file} is invalid: (root): expected a JSON object of settings, received ${received}`,
      );
      assert.doesNotMatch(error.message, /"value"/, 'no field the file never had is blamed');
    }
  });
});

interface HostileConnection {
  hello: HelloMessage;
  socket: WebSocket;
  /** Every message after hello. */
  received: Json[];
  /** The close code and reason the agent's socket closed with. */
  closed: Promise<{ code: number; reason: string }>;
}

type Behaviour = (connection: HostileConnection) => void;

/**
 * A backend that accepts the agent's upgrade on the console path without checking anything, reads
 * its hello, and then does what the test says: one behaviour per connection, the last one for all
 * that follow.
 */
class HostileBackend {
  readonly connections: HostileConnection[] = [];

  private constructor(
    private readonly server: Server,
    private readonly wss: WebSocketServer,
    private readonly behaviours: Behaviour[],
  ) {}

  static async start(behaviours: Behaviour[]): Promise<HostileBackend> {
    const server = createServer((_req, res) => res.writeHead(404).end());
    // Its own limit is generous: it is the agent's limit under test.
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * MAX_MESSAGE_BYTES });
    const hostile = new HostileBackend(server, wss, behaviours);
    server.on('upgrade', (req, socket, head) => {
      if (req.url !== CONSOLE_WS_PATH) {
        socket.destroy();
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => hostile.accept(ws));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return hostile;
  }

  get url(): string {
    return `http://localhost:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.socket.terminate();
    this.wss.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: WebSocket): void {
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      socket.on('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })),
    );
    socket.on('error', () => undefined);
    socket.once('message', (data) => {
      const connection: HostileConnection = {
        hello: JSON.parse((data as Buffer).toString('utf8')) as HelloMessage,
        socket,
        received: [],
        closed,
      };
      socket.on('message', (more) => connection.received.push(JSON.parse((more as Buffer).toString('utf8'))));
      const behaviour = this.behaviours[Math.min(this.connections.length, this.behaviours.length - 1)];
      this.connections.push(connection);
      behaviour?.(connection);
    });
  }
}

describe('bad input: a backend that sends malformed, invalid, unknown and oversized messages', () => {
  let rig: AgentRig;
  let hostile: HostileBackend | undefined;
  let agent: BatonAgent | undefined;
  const crashes: unknown[] = [];
  const onCrash = (error: unknown) => crashes.push(error);
  before(async () => {
    process.on('unhandledRejection', onCrash);
    process.on('uncaughtException', onCrash);
    rig = await AgentRig.start();
  });
  after(async () => {
    process.off('unhandledRejection', onCrash);
    process.off('uncaughtException', onCrash);
    await agent?.stop();
    await hostile?.stop();
    await rig.stop();
  });

  it('refuses each with a clear error and its close code, reconnects, and loses no queued event', async () => {
    const { dataDir, secrets, port, consoleId, delivered } = await consoleWithQueuedEvents(rig, 10);
    const wellBehaved: Behaviour = ({ hello, socket }) => {
      socket.send(
        JSON.stringify({
          type: 'welcome',
          consoleId,
          channel: 'branch-kiosk',
          ackedSeq: 0,
          lastHash: GENESIS_HASH,
          serverTime: rig.clock.now(),
          heartbeatSeconds: 15,
          policyVersion: hello.policyVersion,
          policyHash: hello.policyHash,
          revocationEpoch: hello.revocationEpoch,
        }),
      );
      socket.on('message', (data) => {
        const message = JSON.parse((data as Buffer).toString('utf8')) as { type: string; events?: AssuranceEvent[] };
        const last = message.events?.at(-1);
        if (message.type === 'events' && last !== undefined) {
          socket.send(JSON.stringify({ type: 'events-ack', upToSeq: last.seq, findings: [] }));
        }
      });
    };
    const bad: { name: string; send: string; closeCode: number; notice: RegExp }[] = [
      { name: 'malformed JSON', send: '{"type":"welcome",', closeCode: 4000, notice: /not JSON/ },
      {
        // An acknowledgement the agent cannot read: refused whole, nothing leaves the journal.
        name: 'a schema-invalid message',
        send: JSON.stringify({ type: 'events-ack', upToSeq: 'everything', findings: [] }),
        closeCode: 4002,
        notice: /invalid "events-ack" message \(upToSeq/,
      },
      {
        name: 'an unknown message type',
        send: JSON.stringify({ type: 'drop-journal' }),
        closeCode: 4004,
        notice: /unknown type "drop-journal"/,
      },
      {
        // The content is not what the hash announces: nothing is applied (the console keeps its policy).
        name: 'a policy whose content does not match its hash',
        send: JSON.stringify({ type: 'policy', version: 99, hash: '0'.repeat(64), policy: DEFAULT_POLICY }),
        closeCode: 4002,
        notice: /policy version 99 whose content does not match its hash/,
      },
      {
        name: 'an oversized frame',
        send: JSON.stringify({ type: 'error', code: 'INTERNAL', message: 'x'.repeat(MAX_MESSAGE_BYTES), fatal: false }),
        closeCode: 1009,
        notice: /larger than/,
      },
    ];
    const server = await HostileBackend.start([
      ...bad.map(
        (b): Behaviour =>
          ({ socket }) =>
            socket.send(b.send),
      ),
      wellBehaved,
    ]);
    hostile = server;

    agent = await BatonAgent.start(
      {
        backendUrl: server.url,
        channel: 'branch-kiosk',
        rpId: 'localhost',
        origin: TEST_ORIGIN,
        dataDir,
        agentVersion: 'test',
      },
      { secrets, ceremonies: port, clock: rig.clock, random: () => 0.5 },
    );
    const started = agent;
    const queued = started.status.outbox;
    assert.ok(queued !== undefined && queued.ackedSeq === delivered && queued.pending >= 10, 'events are queued');

    for (const [i, b] of bad.entries()) {
      // Reconnect backoff runs on the fake clock: move it on until the next connection arrives.
      const deadline = Date.now() + 10_000;
      while (server.connections.length <= i) {
        assert.ok(Date.now() < deadline, `the agent reconnected after ${bad[i - 1]?.name ?? 'starting'}`);
        await rig.clock.advance(250);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const connection = server.connections[i];
      assert.ok(connection !== undefined);
      assert.equal(connection.hello.type, 'hello');
      const { code } = await connection.closed;
      assert.equal(code, b.closeCode, `${b.name}: close code`);
      const status = started.status;
      assert.equal(status.notice?.code, 'BACKEND_PROTOCOL_ERROR', `${b.name}: the UI is told`);
      assert.match(status.notice?.message ?? '', b.notice);
      assert.notEqual(status.connection, 'online');
      assert.equal(status.outbox?.ackedSeq, delivered, `${b.name}: no queued event was dropped`);
      assert.notEqual(status.policyVersion, 99, `${b.name}: no policy was applied`);
      assert.ok((status.outbox?.pending ?? 0) >= queued.pending);
      assert.deepEqual(connection.received, [], `${b.name}: nothing was sent to a backend that never welcomed it`);
    }

    await rig.reconnect(started);
    await rig.until(started, (s) => s.outbox?.pending === 0, 'the queue acknowledged by the well-behaved backend');
    const good = server.connections[bad.length];
    assert.ok(good !== undefined && server.connections.length === bad.length + 1, 'one more connection, then calm');
    const events = good.received.flatMap((m: { type: string; events?: AssuranceEvent[] }) => m.events ?? []);
    const lastSeq = started.status.outbox?.lastSeq ?? 0;
    assert.deepEqual(
      events.map((e) => e.seq),
      Array.from({ length: lastSeq - delivered }, (_, i) => delivered + 1 + i),
      'every queued event and those recorded meanwhile were sent once, in order',
    );
    for (const [i, event] of events.entries()) {
      if (i > 0) assert.equal(event.prevHash, hashEvent(events[i - 1] as AssuranceEvent), `event ${event.seq} chains`);
    }
    assert.equal(
      events.filter((e) => e.type === 'policy-decision').length,
      10,
      'the operator’s queued decisions are all there',
    );
    assert.equal(started.status.identity.kind, 'enrolled', 'the agent kept its identity');
    assert.equal(started.status.connection, 'online');
    assert.ok(existsSync(join(dataDir, 'console.json')));
    assert.deepEqual(crashes, [], 'no unhandled rejection or exception');
  });
});
