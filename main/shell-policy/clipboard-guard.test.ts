import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AgentStatusView } from '../../shared/ipc.js';
import type { clipboardClearReason } from './clipboard-guard.js';
import { ClipboardGuard } from './clipboard-guard.js';

type State = AgentStatusView['sessions'][number]['state'];

function status(sessions: [string, State][], front?: string) {
  const frontState = sessions.find(([id]) => id === front)?.[1];
  return {
    sessions: sessions.map(([id, state]) => ({ id, state })),
    front: front === undefined ? undefined : { id: front, operatorId: `op-${front}` },
    locked: front === undefined || frontState === 'locked',
  } as Parameters<typeof clipboardClearReason>[1];
}

/** A clipboard an operator copies into; what the next operator could paste is what it holds. */
function osClipboard() {
  return {
    text: '',
    clear() {
      this.text = '';
    },
  };
}

describe('the clipboard never carries one operator’s data to the next', () => {
  test('Ada copies a customer’s details; after a switch to Ben, Ben cannot paste them', () => {
    const clipboard = osClipboard();
    const guard = new ClipboardGuard(clipboard);
    guard.apply(status([['a', 'active']], 'a'));
    clipboard.text = 'IBAN GB29 NWBK 6016 1331 9268 19';
    assert.equal(guard.apply(status([['a', 'active']], 'a')), undefined, 'working on: nothing is cleared');
    assert.equal(clipboard.text, 'IBAN GB29 NWBK 6016 1331 9268 19');
    assert.equal(
      guard.apply(
        status(
          [
            ['a', 'suspended'],
            ['b', 'active'],
          ],
          'b',
        ),
      ),
      'operator-switched',
    );
    assert.equal(clipboard.text, '');
  });

  test('the screen locking clears it, and so does the session in front ending', () => {
    const clipboard = osClipboard();
    const guard = new ClipboardGuard(clipboard);
    guard.apply(status([['a', 'active']], 'a'));
    clipboard.text = 'customer 42';
    assert.equal(guard.apply(status([['a', 'locked']], 'a')), 'locked');
    assert.equal(clipboard.text, '');
    guard.apply(status([['a', 'active']], 'a'));
    clipboard.text = 'customer 43';
    assert.equal(guard.apply(status([])), 'session-ended');
    assert.equal(clipboard.text, '');
  });

  test('a background session ending does not wipe what the operator in front copied', () => {
    const clipboard = osClipboard();
    const guard = new ClipboardGuard(clipboard);
    const both = status(
      [
        ['a', 'suspended'],
        ['b', 'active'],
      ],
      'b',
    );
    guard.apply(both);
    clipboard.text = 'Ben’s own note';
    assert.equal(guard.apply(status([['b', 'active']], 'b')), undefined);
    assert.equal(clipboard.text, 'Ben’s own note');
  });

  test('it is cleared when Baton starts (whatever an earlier run left) and reports each reason', () => {
    const clipboard = osClipboard();
    clipboard.text = 'left over';
    const reasons: string[] = [];
    const guard = new ClipboardGuard(clipboard, (reason) => reasons.push(reason));
    guard.apply(status([]));
    guard.clear('quitting');
    assert.deepEqual(reasons, ['started', 'quitting']);
    assert.equal(clipboard.text, '');
  });
});
