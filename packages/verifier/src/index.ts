export { ActionTokenVerifier, BATON_ISSUER, ACTION_TOKEN_TYPE, SERVICE_CHANNEL } from './verifier.js';
export type { ActionRequirement, RevocationSource, VerifiedAction, VerifierOptions } from './verifier.js';
export { VerificationError, VERIFICATION_ERRORS, type VerificationCode } from './errors.js';
export { bearerChallenge, parseBearerChallenge, type ChallengeParams } from './challenge.js';
export { LEVELS, LEVEL_ACR, acrValuesFor, meets, type Level } from './levels.js';
export {
  DEFAULT_REVOCATION_SKEW_SECONDS,
  TOKEN_HORIZON_MS,
  RevocationList,
  type Revocation,
  type RevocableToken,
  type RevocationListOptions,
} from './revocation-list.js';
export {
  RevocationSubscription,
  REVOCATION_STREAM_AUDIENCE,
  REVOCATION_STREAM_PATH,
  type RevocationSubscriptionOptions,
} from './revocation-subscription.js';
export { bearerToken, nodeHttpGuard, requireAction, sendRefusal } from './middleware.js';
export {
  SsfSubscription,
  SSF_POLL_METHOD,
  SSF_REVOCATION_EVENTS,
  type SsfSubscriptionOptions,
} from './ssf-subscription.js';
export { SsfPushReceiver, SSF_PUSH_METHOD, type SsfPushReceiverOptions } from './ssf-push.js';
export { es256Backend } from './es256-native.js';
