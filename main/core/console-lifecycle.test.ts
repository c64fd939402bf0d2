import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { BatonError } from '../../shared/errors.js';
import type { BackendInbox } from './backend-inbox.js';
import { FakeAgentContext } from '../../test/helpers/fake-agent-context.js';
import { ConsoleLifecycle, channelMismatchNotice, retireJournal } from './console-lifecycle.js';
import { journalDir } from './console-runtime.js';

describe('console lifecycle', () => {
  let dataDir: string;
  let ctx: FakeAgentContext;
  let control: string[];
  let lifecycle: ConsoleLifecycle;
  /** What the runtime's shutdown resolves with: closed at once unless a test holds the journal open. */
  let journalClosed: Promise<void>;

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'baton-lifecycle-'));
    ctx = new FakeAgentContext(dataDir);
    control = [];
    journalClosed = Promise.resolve();
    lifecycle = new ConsoleLifecycle(ctx, {
      boot: () => control.push(`boot ${ctx.memoryIdentity.status.kind} ${ctx.phase.kind}`),
      shutdown: () => {
        control.push('shutdown');
        return journalClosed;
      },
    });
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  const inbox = () => ({ opened() {}, message() {}, closed() {} }) as unknown as BackendInbox;

  test('a configuration naming another channel than the enrolled one is shown, the same one is not', () => {
    const notice = channelMismatchNotice('branch-kiosk', 'contact-centre', 42);
    assert.equal(notice?.code, 'CHANNEL_MISMATCH');
    assert.match(notice?.message ?? '', /keeps working as "branch-kiosk"/);
    assert.equal(notice?.at, 42);
    assert.equal(channelMismatchNotice('branch-kiosk', 'branch-kiosk', 42), undefined);
  });

  test('a revoked console’s journal is kept aside for IT under a new name, and a missing one is no error', () => {
    const dir = journalDir(dataDir, 'con_1');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'segment-1.jsonl'), 'undelivered\n');
    const retired = retireJournal(dataDir, 'con_1', 1234);
    assert.equal(retired, `${dir}.revoked-1234`);
    assert.equal(existsSync(dir), false, 'a new enrolment starts a new journal');
    assert.equal(readFileSync(join(retired, 'segment-1.jsonl'), 'utf8'), 'undelivered\n');
    assert.equal(retireJournal(dataDir, 'con_2', 1234), undefined);
  });

  test('revocation stops the runtime, keeps the journal aside, forgets the identity and says why', async () => {
    mkdirSync(journalDir(dataDir, 'con_1'), { recursive: true });
    await lifecycle.revoked('stolen');
    assert.deepEqual(control, ['shutdown']);
    assert.equal(existsSync(journalDir(dataDir, 'con_1')), false);
    assert.equal(existsSync(`${journalDir(dataDir, 'con_1')}.revoked-${ctx.clock.now()}`), true);
    assert.deepEqual(ctx.memoryIdentity.status, { kind: 're-enrolment-required', reason: 'revoked', detail: 'stolen' });
    assert.equal(ctx.notice?.code, 'CONSOLE_REVOKED');
  });

  test('a revoked console’s journal is renamed aside only once the journal has closed', async () => {
    const dir = journalDir(dataDir, 'con_1');
    mkdirSync(dir, { recursive: true });
    let close!: () => void;
    journalClosed = new Promise((resolve) => (close = resolve));
    const revoking = lifecycle.revoked('stolen');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(control, ['shutdown']);
    assert.equal(existsSync(dir), true, 'the events still being written go into the journal, not a renamed one');
    close();
    await revoking;
    assert.equal(existsSync(dir), false);
    assert.equal(existsSync(`${dir}.revoked-${ctx.clock.now()}`), true);
  });

  test('an enrolled console is not enrolled over: nothing is shut down', async () => {
    await assert.rejects(lifecycle.enrol('token'), (error: BatonError) => error.code === 'CONSOLE_ALREADY_ENROLLED');
    assert.deepEqual(control, []);
    assert.equal(ctx.notice?.code, 'CONSOLE_ALREADY_ENROLLED');
  });

  test('enrolment is refused while another task runs', async () => {
    ctx.memoryIdentity.status = { kind: 'unenrolled' };
    ctx.phase = { kind: 'signing-in', offline: false };
    await assert.rejects(lifecycle.enrol('token'), (error: BatonError) => error.code === 'CEREMONY_IN_PROGRESS');
    assert.deepEqual(control, []);
  });

  test('a re-enrolment clears the revocation notice and boots the new identity', async () => {
    await lifecycle.revoked('stolen');
    ctx.memoryIdentity.enrolWith = () => ({ kind: 'enrolled', consoleId: 'con_2', channel: 'branch-kiosk' });
    const status = await lifecycle.enrol('token');
    assert.equal(status.kind, 'enrolled');
    assert.equal(ctx.notice, undefined);
    assert.deepEqual(control, ['shutdown', 'shutdown', 'boot enrolled idle']);
  });

  test('a refused token leaves the console unenrolled, idle, with the refusal shown', async () => {
    ctx.memoryIdentity.status = { kind: 'unenrolled' };
    await assert.rejects(lifecycle.enrol('bad'), (error: BatonError) => error.code === 'ENROLMENT_TOKEN_INVALID');
    assert.equal(ctx.phase.kind, 'idle');
    assert.equal(ctx.notice?.code, 'ENROLMENT_TOKEN_INVALID');
    assert.deepEqual(control, ['shutdown', 'boot unenrolled idle']);
  });

  test('no runtime opens for a console that is not enrolled', () => {
    ctx.memoryIdentity.status = { kind: 'unenrolled' };
    assert.equal(lifecycle.openRuntime(inbox()), undefined);
  });

  test('the runtime opens its journal for the enrolled console and shows a channel the configuration changed', async () => {
    ctx.memoryIdentity.status = { kind: 'enrolled', consoleId: 'con_1', channel: 'contact-centre' };
    const runtime = lifecycle.openRuntime(inbox());
    assert.ok(runtime !== undefined);
    try {
      assert.equal(runtime.consoleId, 'con_1');
      assert.equal(existsSync(journalDir(dataDir, 'con_1')), true);
      assert.equal(ctx.notice?.code, 'CHANNEL_MISMATCH');
    } finally {
      await runtime.shutdown();
    }
  });

  test('a console the backend does not know asks for re-enrolment at once, before its journal has closed', async () => {
    let close!: () => void;
    journalClosed = new Promise((resolve) => (close = resolve));
    const closing = lifecycle.unknown();
    assert.deepEqual(control, ['shutdown']);
    const status = ctx.memoryIdentity.status;
    assert.equal(status.kind === 're-enrolment-required' ? status.reason : status.kind, 'unknown-to-backend');
    close();
    await closing;
  });
});
