import { WebAuthnAbortService, startAuthentication, startRegistration } from '@simplewebauthn/browser';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/browser';

/**
 * The browser half of each WebAuthn ceremony. The renderer has no network: options come from the
 * main process (which got them from the backend) and the response goes back the same way.
 */
export function runRegistration(options: PublicKeyCredentialCreationOptionsJSON): Promise<RegistrationResponseJSON> {
  return startRegistration({ optionsJSON: options });
}

export function runAuthentication(options: PublicKeyCredentialRequestOptionsJSON): Promise<AuthenticationResponseJSON> {
  return startAuthentication({ optionsJSON: options });
}

/** Stops the ceremony that is waiting for a key (the operator pressed Cancel): it rejects with AbortError. */
export function cancelCeremony(): void {
  WebAuthnAbortService.cancelCeremony();
}
