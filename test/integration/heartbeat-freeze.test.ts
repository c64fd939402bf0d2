import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AdminClient, TestConsole, TEST_ORIGIN, type ConsoleSocket } from '../helpers/backend-harness.js';
import { readToken, spawnBackend, type BackendProcess } from '../helpers/backend-process.js';
import { dropTestDatabase } from '../helpers/test-database.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * A node frozen for longer than its heartbeat (a paused VM, a host under memory pressure, SIGSTOP)
 * and then resumed: its heartbeat timer fires before the event loop reads the sockets, so the pongs
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
  let backend: BackendProcess | undefined;
  after(async () => {
    if (backend !== undefined) {
      backend.child.kill('SIGCONT');
      backend.child.kill('SIGKILL');
      await backend.exited;
    }
    await dropTestDatabase(dataDir);
  });

  it('keeps the consoles whose pongs arrived during the freeze, and still cuts off the one that never answered', async () => {
    // Two seconds: the test stops the node well within one period of the ping it waits for, even on a loaded machine.
    const HEARTBEAT_SECONDS = 2;
    writeFileSync(configFile, JSON.stringify({ heartbeatSeconds: HEARTBEAT_SECONDS }));
    backend = await spawnBackend({ dataDir, tokenFile, origin: TEST_ORIGIN, extra: ['--config', configFile] });
    const pid = backend.child.pid;
    assert.ok(pid !== undefined);
    const admin = new AdminClient(backend.url, readToken(tokenFile));

    const connect = async (): Promise<ConsoleSocket> => {
      const console = await TestConsole.enrol(backend?.url ?? '', admin);
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
    backend.child.kill('SIGSTOP');
    await until(() => processState(pid) === 'T', 'the backend process to stop');
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
});
