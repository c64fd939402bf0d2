import { randomUUID } from 'node:crypto';
import { BatonError } from '../../shared/errors.js';
import type { AccountChoiceRequest, IpcRequest } from '../../shared/ipc.js';
import type { AccountChoiceSink } from '../core/ipc-dispatcher.js';
import type { Clock, Timer } from '../core/clock.js';
import { originOf } from './navigation.js';

/** What Electron's `select-webauthn-account` offers (its `WebAuthnAccount`). */
export interface OfferedAccount {
  credentialId: string;
  name?: string;
  displayName?: string;
  userHandle?: string;
}

/** The operator has this long to pick an account before the tap is cancelled. */
export const ACCOUNT_CHOICE_TIMEOUT_MS = 60_000;
const MAX_ACCOUNTS = 50;
const MAX_LABEL = 200;

interface Pending {
  requestId: string;
  offered: Set<string>;
  resolve: (credentialId: string | null) => void;
  timer: Timer;
}

/**
 * Chooses which discoverable credential a usernameless tap uses when Electron asks
 * (`select-webauthn-account`, Electron ≥ 41.5). One account: that one, without asking. Several
 * (one key holding several operators' passkeys): Baton's own picker in the operator UI, through the
 * `ceremony:choose-account` event and the `ceremony:account-chosen` channel. Anything else — no
 * account, an answer nobody asked for, a credential that was not offered, a timeout — cancels the
 * tap (`null`), so the page gets `NotAllowedError` and the agent reports a cancelled ceremony.
 */
export class AccountPicker implements AccountChoiceSink {
  private pending: Pending | undefined;

  constructor(
    private readonly push: (request: AccountChoiceRequest) => void,
    private readonly clock: Clock,
    private readonly timeoutMs = ACCOUNT_CHOICE_TIMEOUT_MS,
  ) {}

  choose(details: { relyingPartyId: string; accounts: readonly OfferedAccount[] }): Promise<string | null> {
    const accounts = details.accounts.filter((a) => typeof a.credentialId === 'string' && a.credentialId !== '');
    if (accounts.length === 0) return Promise.resolve(null);
    if (accounts.length === 1) return Promise.resolve((accounts[0] as OfferedAccount).credentialId);
    // A newer request replaces an unanswered one (the page that asked first has gone on).
    this.cancelAll();
    const shown = accounts.slice(0, MAX_ACCOUNTS);
    const requestId = randomUUID();
    return new Promise((resolve) => {
      const timer = this.clock.setTimer(this.timeoutMs, () => this.settle(requestId, null));
      this.pending = { requestId, offered: new Set(shown.map((a) => a.credentialId)), resolve, timer };
      this.push({
        requestId,
        relyingPartyId: details.relyingPartyId.slice(0, 253),
        accounts: shown.map((a) => ({
          credentialId: a.credentialId,
          ...(a.name === undefined ? {} : { name: a.name.slice(0, MAX_LABEL) }),
          ...(a.displayName === undefined ? {} : { displayName: a.displayName.slice(0, MAX_LABEL) }),
        })),
      });
    });
  }

  /** The operator's pick (already schema-checked by the IPC dispatcher). */
  answer(answer: IpcRequest<'ceremony:account-chosen'>): void {
    const pending = this.pending;
    if (pending === undefined || pending.requestId !== answer.requestId) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'No account choice is waiting for this answer');
    }
    if (answer.credentialId !== null && !pending.offered.has(answer.credentialId)) {
      throw new BatonError('SCHEMA_INVALID', 'expected one of the offered accounts, received another credential id');
    }
    this.settle(answer.requestId, answer.credentialId);
  }

  /** The UI went away, or a new request came: the waiting tap is cancelled. */
  cancelAll(): void {
    if (this.pending !== undefined) this.settle(this.pending.requestId, null);
  }

  private settle(requestId: string, credentialId: string | null): void {
    const pending = this.pending;
    if (pending === undefined || pending.requestId !== requestId) return;
    this.pending = undefined;
    pending.timer.cancel();
    pending.resolve(credentialId);
  }
}

/** What Electron's `select-webauthn-account` hands over (its `SelectWebauthnAccountDetails`). */
export interface AccountSelectionRequest {
  relyingPartyId: string;
  accounts: readonly OfferedAccount[];
  /** The frame that runs the ceremony; null once it is gone. */
  frame: { url: string; parent: unknown } | null;
}

/**
 * Answers one `select-webauthn-account`: only the operator UI's top frame gets an account (the
 * picker's choice); any other frame, or a frame already gone, gets none. `callback` is called
 * exactly once whatever happens, a failing picker included.
 */
export function answerAccountSelection(
  request: AccountSelectionRequest,
  callback: (credentialId: string | null) => void,
  picker: Pick<AccountPicker, 'choose'>,
  uiOrigin: string,
): void {
  let answered = false;
  const reply = (credentialId: string | null) => {
    if (answered) return;
    answered = true;
    callback(credentialId);
  };
  const frame = request.frame;
  if (frame === null || frame.parent !== null || originOf(frame.url) !== uiOrigin) {
    reply(null);
    return;
  }
  picker.choose(request).then(reply, () => reply(null));
}
