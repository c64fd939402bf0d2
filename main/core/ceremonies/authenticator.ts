import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { BatonError } from '../../../shared/errors.js';
import { AuthenticationResponseSchema, RegistrationResponseSchema } from '../../../shared/http-api.js';
import type { CeremonyPort } from '../agent-types.js';

/**
 * The operator's half of a ceremony through the injected port, checked before anything reads it:
 * a cancelled tap, a timeout or an answer of the wrong shape is CEREMONY_CANCELLED.
 */
export async function askAssertion(
  port: CeremonyPort,
  purpose: 'sign-in' | 'step-up' | 'offline-resume',
  options: PublicKeyCredentialRequestOptionsJSON,
  action?: string,
): Promise<AuthenticationResponseJSON> {
  const response = await ask(() =>
    port.getAssertion({ purpose, options, ...(action === undefined ? {} : { action }) }),
  );
  const checked = AuthenticationResponseSchema.safeParse(response);
  if (!checked.success) throw new BatonError('CEREMONY_CANCELLED', 'The authenticator gave an unusable answer');
  return checked.data as AuthenticationResponseJSON;
}

export async function askCredential(
  port: CeremonyPort,
  operatorName: string,
  options: PublicKeyCredentialCreationOptionsJSON,
): Promise<RegistrationResponseJSON> {
  const response = await ask(() => port.createCredential({ operatorName, options }));
  const checked = RegistrationResponseSchema.safeParse(response);
  if (!checked.success) throw new BatonError('CEREMONY_CANCELLED', 'The authenticator gave an unusable answer');
  return checked.data as RegistrationResponseJSON;
}

async function ask<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (cause) {
    if (cause instanceof BatonError) throw cause;
    throw new BatonError('CEREMONY_CANCELLED', 'The tap was cancelled or timed out', { cause });
  }
}
