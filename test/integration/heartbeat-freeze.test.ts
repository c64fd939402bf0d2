import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import { AdminClient, TestConsole, TEST_ORIGIN, type ConsoleSocket } from '../helpers/backend-harness.js';
import { readToken, spawnBackend, type BackendProcess } from '../helpers/backend-process.js';
import { dropTestDatabase } from '../helpers/test-database.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * A node frozen for longer than its heartbeat (SIGSTOP, a host under memory pressure, a long stop
 * of the world) and then resumed: its heartbeat timer fires before the event loop reads the sockets, so the pongs
 * that arrived during the freeze are still unread. Judged then, every console that answered would
 * be cut off at once and all of them would reconnect together. The backend runs in a child process
 * stopped with SIGSTOP; the consoles answer pings themselves (`autoPong: false`), one during the
 * freeze and one never.
 */

/** The process state letter from /proc (`T` once a SIGSTOP has taken effect). */
function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

async function until(test: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('a node frozen past its heartbeat and resumed', () => {
  const dir = tempDir('baton-heartbeat-freeze-');
  const dataDir = join(dir, 'data');
  const tokenFile = join(dir, 'bootstrap-token');
  const configFile = join(dir, 'config.json');
  // Three seconds: the test stops the node well within one period of the ping it waits for, even on a loaded machine.
  const HEARTBEAT_SECONDS = 3;
  const HELLO_TIMEOUT_SECONDS = 2;
  let backend: BackendProcess;
  let pid: number;
  let admin: AdminClient;
  before(async () => {
    writeFileSync(
      configFile,
      JSON.stringify({ heartbeatSeconds: HEARTBEAT_SECONDS, helloTimeoutSeconds: HELLO_TIMEOUT_SECONDS }),
    );
    backend = await spawnBackend({ dataDir, tokenFile, origin: TEST_ORIGIN, extra: ['--config', configFile] });
    assert.ok(backend.child.pid !== undefined);
    pid = backend.child.pid;
    admin = new AdminClient(backend.url, readToken(tokenFile));
  });
  after(async () => {
    if (backend !== undefined) {
      backend.child.kill('SIGCONT');
      backend.child.kill('SIGKILL');
      await backend.exited;
    }
    await dropTestDatabase(dataDir);
  });

  /** Stops the backend and waits until the stop has taken effect. */
  const stop = async () => {
    backend.child.kill('SIGSTOP');
    await until(() => processState(pid) === 'T', 'the backend process to stop');
  };

  it('keeps the consoles whose pongs arrived during the freeze, and still cuts off the one that never answered', async () => {
    const connect = async (): Promise<ConsoleSocket> => {
      const console = await TestConsole.enrol(backend.url, admin);
      const socket = await console.connect({ autoPong: false });
      await socket.next('welcome');
      return socket;
    };
    const [answering, silent] = await Promise.all([connect(), connect()]);
    let answeringClosed = false;
    void answering.closed.then(() => (answeringClosed = true));
    let silentClosed = false;
    void silent.closed.then(() => (silentClosed = true));

    // From the next heartbeat on, neither console answers by itself: the node waits for both pongs.
    answering.answerPings = false;
    silent.answerPings = false;
    const [answeringBase, silentBase] = [answering.pings, silent.pings];
    await until(
      () => answering.pings > answeringBase && silent.pings > silentBase,
      'a heartbeat pinging both consoles',
    );
    await stop();
    // The node stopped within the heartbeat that pinged both (not after the next one had judged them).
    assert.deepEqual(
      [answering.pings - answeringBase, silent.pings - silentBase, answeringClosed, silentClosed],
      [1, 1, false, false],
      'the node was stopped within one heartbeat period of its ping (the test process was too slow otherwise)',
    );
    answering.ws.pong(); // arrives while the node is frozen: unread until it resumes
    // Frozen for longer than a heartbeat period: the next beat is due the moment it resumes.
    await new Promise((resolve) => setTimeout(resolve, 1.5 * HEARTBEAT_SECONDS * 1000));
    const pingsBeforeResume = answering.pings;
    answering.answerPings = true;
    backend.child.kill('SIGCONT');

    // The first heartbeat after the freeze cuts off the console that never answered ...
    await until(() => silentClosed, 'the silent console to be cut off after the freeze');
    // ... and pings the one that did, which answers from now on and stays connected for one more beat.
    await until(
      () => answeringClosed || answering.pings >= pingsBeforeResume + 2,
      'two more pings to the answering console',
    );
    assert.equal(
      answeringClosed,
      false,
      'a console whose pong arrived while the node was frozen is not cut off when it resumes',
    );
    const consoles = (await admin.ok('GET', '/v1/admin/consoles')) as {
      consoles: { id: string; online: boolean }[];
    };
    assert.deepEqual(
      consoles.consoles.filter((c) => c.online).length,
      1,
      'the answering console is the one console still online',
    );
    answering.ws.terminate();
  });

  it('welcomes a console whose hello arrived during the freeze, although its hello deadline passed meanwhile', async () => {
    const console = await TestConsole.enrol(backend.url, admin);
    const socket = await console.connect({ hello: false }); // the node's hello timer runs from the upgrade
    await stop();
    socket.send({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      policyVersion: 0,
      revocationEpoch: 0,
      agentVersion: 'test',
    });
    // Frozen past the hello deadline: the timer is due the moment the node resumes, the hello unread.
    await new Promise((resolve) => setTimeout(resolve, (HELLO_TIMEOUT_SECONDS + 1) * 1000));
    backend.child.kill('SIGCONT');
    const welcome = await socket.next('welcome', () => true, 10_000);
    assert.equal(welcome.consoleId, console.id);
    assert.deepEqual(
      socket.received.filter((m) => m.type === 'error'),
      [],
      'no HELLO_REQUIRED for a hello that arrived in time',
    );
    await socket.close();
  });
});
