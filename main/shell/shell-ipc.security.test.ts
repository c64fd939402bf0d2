import assert from 'node:assert/strict';
/** Shell security, part 2: WebAuthn account selection, IPC callers and arguments, idle and lock signals (part 1, windows and navigation, is shell.security.test.ts). */
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import type { IpcMain, PowerMonitor, Session } from 'electron';
import type { BatonAgent } from '../core/agent.js';
import { CeremonyBroker } from '../core/ceremony-broker.js';
import { IpcDispatcher } from '../core/ipc-dispatcher.js';
import { IPC_CHANNELS, type AccountChoiceRequest, type IpcResult } from '../../shared/ipc.js';
import { FakeClock } from '../../test/helpers/fake-clock.js';
import { AccountPicker } from '../shell-policy/account-picker.js';
import { SenderTable, handleInvoke, identifyCaller, type SenderLike } from '../shell-policy/ipc-callers.js';
import { throttleActivity, watchPower } from '../shell-policy/power.js';
import { handleAccountSelection } from './guards.js';
import { registerIpcHandlers } from './ipc.js';
import { FakeSession } from '../../test/helpers/fake-electron-session.js';

const UI = 'http://localhost:8471';
const WS = 'https://workspace.example.test';

describe('select-webauthn-account: one account is used, several get Baton’s picker', () => {
  const frame = (url: string, parent: unknown = null) => ({ url, parent });

  function setup() {
    const clock = new FakeClock();
    const pushed: AccountChoiceRequest[] = [];
    const picker = new AccountPicker((r) => pushed.push(r), clock);
    const ses = new FakeSession();
    handleAccountSelection(ses as unknown as Session, picker, UI);
    const select = (details: object) =>
      new Promise<string | null | undefined>((resolve) => ses.emit('select-webauthn-account', {}, details, resolve));
    return { clock, pushed, picker, select };
  }

  const two = [
    { credentialId: 'cred-nia', name: 'nia', displayName: 'Nia' },
    { credentialId: 'cred-oz', name: 'oz', displayName: 'Oz' },
  ];

  test('a single discoverable credential is chosen at once, without asking', async () => {
    const { select, pushed } = setup();
    assert.equal(await select({ relyingPartyId: 'localhost', accounts: [two[0]], frame: frame(`${UI}/`) }), 'cred-nia');
    assert.equal(pushed.length, 0);
  });

  test('several credentials on one key: the operator picks in Baton’s UI', async () => {
    const { select, pushed, picker } = setup();
    const answer = select({ relyingPartyId: 'localhost', accounts: two, frame: frame(`${UI}/`) });
    assert.equal(pushed.length, 1);
    const request = pushed[0] as AccountChoiceRequest;
    assert.deepEqual(
      request.accounts.map((a) => a.displayName),
      ['Nia', 'Oz'],
    );
    assert.throws(() => picker.answer({ requestId: request.requestId, credentialId: 'cred-mallory' }), /offered/);
    picker.answer({ requestId: request.requestId, credentialId: 'cred-oz' });
    assert.equal(await answer, 'cred-oz');
    assert.throws(() => picker.answer({ requestId: request.requestId, credentialId: 'cred-oz' }), /No account choice/);
  });

  test('a ceremony from another origin or a subframe gets no account; nobody choosing in time cancels', async () => {
    const { select, clock, pushed } = setup();
    assert.equal(await select({ relyingPartyId: 'localhost', accounts: two, frame: frame(WS) }), null);
    assert.equal(await select({ relyingPartyId: 'localhost', accounts: two, frame: frame(`${UI}/`, {}) }), null);
    assert.equal(await select({ relyingPartyId: 'localhost', accounts: two, frame: null }), null);
    assert.equal(pushed.length, 0);
    const answer = select({ relyingPartyId: 'localhost', accounts: two, frame: frame(`${UI}/`) });
    await clock.advance(60_001);
    assert.equal(await answer, null);
  });
});

describe('IPC: only the expected frame may call, with arguments the contract accepts', () => {
  const registry = new SenderTable(UI, WS);
  registry.addOperatorUi(1);
  registry.addWorkspace(2, 'ses_a');
  const top = (webContentsId: number, url: string): SenderLike => ({ webContentsId, frame: { url, isTopFrame: true } });

  test('the lock window’s top frame on the UI origin is the operator UI; a workspace view is its session', () => {
    assert.deepEqual(identifyCaller(top(1, `${UI}/`), registry), { kind: 'operator-ui' });
    assert.deepEqual(identifyCaller(top(2, `${WS}/app`), registry), {
      kind: 'workspace',
      sessionId: 'ses_a',
      origin: WS,
    });
  });

  test('a subframe, another origin, an unknown WebContents or a vanished frame is refused', () => {
    assert.equal(
      identifyCaller({ webContentsId: 1, frame: { url: `${UI}/`, isTopFrame: false } }, registry),
      undefined,
    );
    assert.equal(identifyCaller(top(1, 'https://evil.example.test/'), registry), undefined);
    assert.equal(identifyCaller(top(1, 'http://localhost:9999/'), registry), undefined);
    assert.equal(identifyCaller(top(1, 'data:text/html,hi'), registry), undefined);
    assert.equal(identifyCaller(top(2, `${UI}/`), registry), undefined, 'a workspace navigated to the UI origin');
    assert.equal(identifyCaller(top(3, `${UI}/`), registry), undefined, 'a WebContents Baton did not make');
    assert.equal(identifyCaller({ webContentsId: 1, frame: null }, registry), undefined);
  });

  function dispatcher(picker = new AccountPicker(() => undefined, new FakeClock())) {
    // The agent is never reached: every call below is refused before any work.
    return new IpcDispatcher({} as BatonAgent, new CeremonyBroker(() => undefined, new FakeClock()), picker);
  }
  const refused = (result: IpcResult<unknown>, code: string) => {
    assert.equal(result.ok, false, JSON.stringify(result));
    assert.equal(!result.ok && result.error.code, code, JSON.stringify(result));
  };

  test('an unexpected frame is refused before the dispatcher sees anything', async () => {
    let reached = 0;
    const spy = { dispatch: () => Promise.resolve((reached++, { ok: true, value: {} }) as IpcResult<unknown>) };
    const seen: string[] = [];
    const sub = { webContentsId: 1, frame: { url: `${UI}/`, isTopFrame: false } };
    refused(await handleInvoke('session:tap-in', sub, [{}], spy, registry, (c) => seen.push(c)), 'NOT_FOUND');
    refused(await handleInvoke('session:tap-in', top(9, `${UI}/`), [{}], spy, registry), 'NOT_FOUND');
    assert.equal(reached, 0);
    assert.deepEqual(seen, ['session:tap-in']);
  });

  test('bad arguments are refused by the contract: wrong shape, extra fields, extra arguments', async () => {
    const d = dispatcher();
    const ui = top(1, `${UI}/`);
    refused(await handleInvoke('action:authorize', ui, [{ action: '../../etc' }], d, registry), 'SCHEMA_INVALID');
    refused(await handleInvoke('session:tap-in', ui, [{ operator: 'someone-else' }], d, registry), 'SCHEMA_INVALID');
    refused(await handleInvoke('session:tap-in', ui, [{}, { more: 1 }], d, registry), 'SCHEMA_INVALID');
    refused(
      await handleInvoke('ceremony:account-chosen', ui, [{ requestId: 'x', credentialId: 1 }], d, registry),
      'SCHEMA_INVALID',
    );
    refused(await handleInvoke('agent:shutdown', ui, [{}], d, registry), 'NOT_FOUND');
  });

  test('a workspace reaches only its two channels', async () => {
    const d = dispatcher();
    refused(await handleInvoke('session:sign-out', top(2, `${WS}/`), [{}], d, registry), 'NOT_FOUND');
    refused(await handleInvoke('ceremony:account-chosen', top(2, `${WS}/`), [{}], d, registry), 'NOT_FOUND');
  });

  test('the operator’s account pick reaches the picker through the contract', async () => {
    const pushed: AccountChoiceRequest[] = [];
    const picker = new AccountPicker((r) => pushed.push(r), new FakeClock());
    const chosen = picker.choose({
      relyingPartyId: 'localhost',
      accounts: [{ credentialId: 'a' }, { credentialId: 'b' }],
    });
    const requestId = (pushed[0] as AccountChoiceRequest).requestId;
    const result = await handleInvoke(
      'ceremony:account-chosen',
      top(1, `${UI}/`),
      [{ requestId, credentialId: 'b' }],
      dispatcher(picker),
      registry,
    );
    assert.deepEqual(result, { ok: true, value: {} });
    assert.equal(await chosen, 'b');
  });

  test('every channel of the contract is registered with ipcMain.handle, and removed again', () => {
    const handled: string[] = [];
    const removed: string[] = [];
    const ipcMain = {
      handle: (channel: string) => handled.push(channel),
      removeHandler: (channel: string) => removed.push(channel),
    };
    const unregister = registerIpcHandlers(ipcMain as unknown as IpcMain, dispatcher(), registry);
    assert.deepEqual(handled.sort(), [...IPC_CHANNELS].sort());
    unregister();
    assert.deepEqual(removed.sort(), [...IPC_CHANNELS].sort());
  });
});

describe('idle and lock signals reach the agent', () => {
  test('system idle time is polled, an OS lock or a suspend locks at once, and stopping detaches', () => {
    const power = Object.assign(new EventEmitter(), { idle: 0, getSystemIdleTime: () => power.idle });
    const calls: string[] = [];
    const agent = {
      reportSystemIdle: (s: number) => calls.push(`idle ${s}`),
      osLocked: () => calls.push('locked'),
    };
    let tick: (() => void) | undefined;
    const stop = watchPower(power as unknown as PowerMonitor, agent, {
      every: (_ms, fn) => ((tick = fn), () => (tick = undefined)),
    });
    power.idle = 42;
    tick?.();
    power.emit('lock-screen');
    power.emit('suspend');
    assert.deepEqual(calls, ['idle 42', 'locked', 'locked']);
    stop();
    power.emit('lock-screen');
    assert.equal(tick, undefined);
    assert.equal(calls.length, 3);
  });

  test('input activity reaches the agent at most once a second', async () => {
    const clock = new FakeClock();
    let notes = 0;
    const note = throttleActivity(() => notes++, clock);
    for (let i = 0; i < 50; i++) note();
    await clock.advance(999);
    note();
    await clock.advance(1);
    note();
    assert.equal(notes, 2);
  });

  test('a wall clock set back does not swallow input (the operator would be idle-locked while typing)', async () => {
    const clock = new FakeClock();
    let notes = 0;
    const note = throttleActivity(() => notes++, clock);
    note();
    clock.shiftWall(-3_600_000);
    await clock.advance(1000);
    note();
    assert.equal(notes, 2);
  });
});
