import { randomUUID } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { BatonError } from '../../shared/errors.js';
import type { CeremonyRequest, IpcRequest } from '../../shared/ipc.js';
import type { CeremonyPort } from './agent.js';
import type { Clock, Timer } from './clock.js';

/** How long the operator has to tap before the ceremony is abandoned (WebAuthn's own timeout is 60 s). */
export const CEREMONY_TIMEOUT_MS = 90_000;

interface Waiting {
  resolve: (response: Record<string, unknown>) => void;
  reject: (error: BatonError) => void;
  timer: Timer;
}

/**
 * The agent's CeremonyPort over IPC: each ceremony becomes a `ceremony:request` pushed to the
 * operator UI, and resolves when the UI answers `ceremony:answer` with the same request id. An
 * answer nobody asked for, or a second answer, is refused. The agent validates the response itself.
 */
export class CeremonyBroker implements CeremonyPort {
  private readonly waiting = new Map<string, Waiting>();

  constructor(
    private readonly push: (request: CeremonyRequest) => void,
    private readonly clock: Clock,
  ) {}

  getAssertion(request: {
    purpose: 'sign-in' | 'step-up' | 'offline-resume' | 'break-glass';
    action?: string;
    operatorName?: string;
    options: PublicKeyCredentialRequestOptionsJSON;
  }): Promise<AuthenticationResponseJSON> {
    return this.ask({
      kind: 'get',
      purpose: request.purpose,
      ...(request.action === undefined ? {} : { action: request.action }),
      ...(request.operatorName === undefined ? {} : { operatorName: request.operatorName }),
      options: request.options as unknown as Record<string, unknown>,
    }) as unknown as Promise<AuthenticationResponseJSON>;
  }

  createCredential(request: {
    operatorName: string;
    options: PublicKeyCredentialCreationOptionsJSON;
  }): Promise<RegistrationResponseJSON> {
    return this.ask({
      kind: 'create',
      purpose: 'enrol',
      operatorName: request.operatorName,
      options: request.options as unknown as Record<string, unknown>,
    }) as unknown as Promise<RegistrationResponseJSON>;
  }

  /** The UI's answer (already schema-checked by the IPC dispatcher). */
  answer(answer: IpcRequest<'ceremony:answer'>): void {
    const waiting = this.waiting.get(answer.requestId);
    if (waiting === undefined) {
      throw new BatonError('CHALLENGE_UNKNOWN', 'No ceremony is waiting for this answer');
    }
    this.waiting.delete(answer.requestId);
    waiting.timer.cancel();
    if (answer.outcome === 'ok') waiting.resolve(answer.response);
    else waiting.reject(new BatonError('CEREMONY_CANCELLED', `The tap was cancelled (${answer.reason})`));
  }

  /** The UI went away (reload, crash): every waiting ceremony is cancelled. */
  cancelAll(reason: string): void {
    for (const [id, waiting] of this.waiting) {
      this.waiting.delete(id);
      waiting.timer.cancel();
      waiting.reject(new BatonError('CEREMONY_CANCELLED', reason));
    }
  }

  private ask(request: Omit<CeremonyRequest, 'requestId'>): Promise<Record<string, unknown>> {
    const requestId = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimer(CEREMONY_TIMEOUT_MS, () => {
        if (!this.waiting.delete(requestId)) return;
        reject(new BatonError('CEREMONY_CANCELLED', 'Nobody tapped a key in time'));
      });
      this.waiting.set(requestId, { resolve, reject, timer });
      this.push({ requestId, ...request });
    });
  }
}
