import type { Store } from '../store/repositories.js';
import type { AuthenticatorMetadata } from './authenticator-metadata.js';
import type { EventLog } from './event-log.js';
import type { PolicyService } from './policy-service.js';
import type { ChallengeStore, WebAuthnCeremonies } from './webauthn-ceremonies.js';

/** What every service that runs a WebAuthn ceremony works with. */
export interface CeremonyContext {
  readonly store: Store;
  readonly events: EventLog;
  readonly policies: PolicyService;
  readonly challenges: ChallengeStore;
  readonly ceremonies: WebAuthnCeremonies;
  readonly clock: () => number;
  /** Authenticator models from the FIDO metadata BLOB, and the policy's certification rules. */
  readonly authenticators: AuthenticatorMetadata;
}
