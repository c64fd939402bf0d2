import type { ErrorCode } from '../shared/errors.js';
import type { AgentStatusView } from '../shared/ipc.js';

/**
 * Everything the operator UI says, in plain words: refusals by their stable code, policy decision
 * reasons, why a console must be re-enrolled, why a session ended. The code itself is shown only
 * in a small detail line for IT.
 */

const CALL_IT = 'If it keeps happening, call IT.';

const NOTICES: Partial<Record<ErrorCode, string>> = {
  CEREMONY_CANCELLED: 'No key was touched in time. Try again when you are ready.',
  CEREMONY_IN_PROGRESS: 'The console is already waiting for a key. Finish or cancel that first.',
  NO_SESSION_IN_FRONT: 'Nobody is signed in in front right now. Tap your key first.',
  ACTION_DENIED: 'This action is not allowed on this console, whoever signs in.',
  BACKEND_UNREACHABLE: 'The Baton server cannot be reached right now, so this cannot be done. Try again later.',
  OFFLINE_SIGN_IN_REFUSED:
    'The Baton server cannot be reached, so new sign-ins must wait. Only people already signed in here can come back.',
  OFFLINE_RESUME_REFUSED:
    'Your session here was left too long ago to be opened while the Baton server is unreachable. It will open once the server is back.',
  AGENT_SYNCING: 'The console is still catching up with the Baton server. Tap again in a moment.',
  CONSOLE_NOT_ENROLLED: 'This console is not set up yet. IT needs to enrol it.',
  CONSOLE_REENROLMENT_REQUIRED: 'This console must be enrolled again by IT.',
  CONSOLE_REVOKED: 'IT has withdrawn this console’s access. It must be enrolled again.',
  CONSOLE_UNKNOWN: 'The Baton server does not know this console any more. It must be enrolled again.',
  CREDENTIAL_UNKNOWN:
    'This key is not registered with Baton. If it is your first time, register it with the code IT gave you.',
  CREDENTIAL_REVOKED: 'This key has been withdrawn by IT and can no longer sign in. Ask IT for a new enrolment code.',
  CREDENTIAL_NOT_DEVICE_BOUND: 'This kind of key is not allowed here (its passkey can be copied to other devices).',
  CREDENTIAL_AAGUID_NOT_ALLOWED: 'This model of key is not on the list IT allows.',
  CREDENTIAL_ALREADY_REGISTERED: 'This key is already registered. Tap it on the lock screen to sign in.',
  OPERATOR_REVOKED: 'Your access has been withdrawn by IT.',
  OPERATOR_LOCKED: 'Your account is locked. Please speak to IT.',
  OPERATOR_UNKNOWN: 'Baton does not know this person.',
  LEVEL_NOT_ALLOWED_ON_CHANNEL: 'This console needs a stronger check: touch your key and give its PIN or fingerprint.',
  STEP_UP_WRONG_OPERATOR: 'That key belongs to someone else. Only the person signed in can confirm this action.',
  STEP_UP_INSUFFICIENT: 'That check was not strong enough for this action. Use your PIN or fingerprint with your key.',
  WEBAUTHN_USER_VERIFICATION_REQUIRED:
    'Your key confirmed you touched it, but not your PIN or fingerprint. This needs both.',
  WEBAUTHN_VERIFICATION_FAILED: 'The key’s answer could not be checked. Try again.',
  WEBAUTHN_COUNTER_REGRESSED: 'This key looks like a copy of a registered key, so it was refused. Please speak to IT.',
  CREDENTIAL_SUSPENDED:
    'This key is on hold: it looked like a copy of a registered key. IT must check it before it can sign in again.',
  WEBAUTHN_USER_PRESENCE_REQUIRED: 'The key did not register a touch. Touch your key when it blinks.',
  WEBAUTHN_WRONG_CEREMONY_TYPE: 'The key answered a different request. Try again. ' + CALL_IT,
  WEBAUTHN_ORIGIN_MISMATCH: 'The key answered for another site. This console is misconfigured: please call IT.',
  WEBAUTHN_RP_ID_MISMATCH: 'The key answered for another site. This console is misconfigured: please call IT.',
  CHALLENGE_UNKNOWN: 'That tap answered a request this console did not make. Try again.',
  CHALLENGE_EXPIRED: 'That request timed out. Try again.',
  ENROLMENT_CODE_INVALID: 'That enrolment code is not right. Check it, or ask IT for a new one.',
  ENROLMENT_CODE_EXPIRED: 'That enrolment code has expired. Ask IT for a new one.',
  ENROLMENT_CODE_USED: 'That enrolment code has already been used. Ask IT for a new one.',
  ENROLMENT_TOKEN_INVALID: 'That console enrolment token is not right. Check it, or ask IT for a new one.',
  ENROLMENT_TOKEN_EXPIRED: 'That console enrolment token has expired. Ask IT for a new one.',
  ENROLMENT_TOKEN_USED: 'That console enrolment token has already been used. Ask IT for a new one.',
  CHANNEL_UNKNOWN: 'The Baton server does not know this console’s channel. Please call IT.',
  ENROLMENT_TOKEN_CHANNEL_MISMATCH:
    'That token is for a different kind of console, not this one. Ask IT for a token for this kind of console.',
  SCHEMA_INVALID: 'That entry is not in the expected form. Check it and try again.',
  // Break-glass (issue 14 item 7): the panel in renderer/break-glass.ts has its own words for its steps.
  BREAK_GLASS_DISABLED: 'Temporary access without a key is not switched on here. Ask IT.',
  BREAK_GLASS_LIMIT_REACHED:
    'Temporary access has already been used as often as allowed today (for you or for this branch). Ask IT.',
  BREAK_GLASS_SELF_APPROVAL: 'You cannot approve your own access: another supervisor must touch their key.',
  BREAK_GLASS_NOT_APPROVER: 'That key is not a supervisor’s. A supervisor must touch their own key.',
  BREAK_GLASS_CODE_INVALID:
    'That code is not one IT issued for you on this console. Check it, or ask IT for a new one.',
  BREAK_GLASS_CODE_EXPIRED: 'That code has expired. Ask IT for a new one.',
  BREAK_GLASS_CODE_USED: 'That code was already used. Ask IT for a new one.',
  OUTBOX_FULL: 'The console’s record of events is full and cannot store more. Please call IT now.',
  OUTBOX_DAMAGED: 'Some of the console’s stored events could not be read; the rest were kept. Please tell IT.',
  SECRET_STORE_UNAVAILABLE: 'The console cannot reach the computer’s credential store. Please call IT.',
  BACKEND_PROTOCOL_ERROR: 'The Baton server sent something the console did not understand. It is reconnecting.',
  SESSION_NOT_ACTIVE: 'That session is no longer open. Tap your key to sign in again.',
  SESSION_UNKNOWN: 'That session is no longer open. Tap your key to sign in again.',
  SHUTTING_DOWN: 'The Baton server is restarting. Try again in a moment.',
  // A cluster node that cannot confirm it has every revocation (issue 10): the console is told, and a retry may reach
  // another node.
  NODE_STALE:
    'The Baton server cannot confirm it has the latest changes, so new sign-ins wait. Try again in a moment. ' +
    CALL_IT,
  STORAGE_UNAVAILABLE: 'The Baton server cannot save anything right now. Try again in a moment. ' + CALL_IT,
  DATABASE_UNREACHABLE: 'The Baton server cannot reach its database right now. Try again in a moment. ' + CALL_IT,
};

/** Faults that stand until IT acts, shown even on a page that loads after they were raised. */
export const STANDING_NOTICES: ReadonlySet<string> = new Set<ErrorCode>([
  'OUTBOX_FULL',
  'OUTBOX_DAMAGED',
  'SECRET_STORE_UNAVAILABLE',
  'CONSOLE_REVOKED',
  'CONSOLE_REENROLMENT_REQUIRED',
]);

/**
 * How a ceremony ended without the key's answer, as this page saw it: the operator pressed Cancel;
 * the key said no at once (a wrong PIN or fingerprint, or a key not registered here: the browser
 * does not tell these apart, on purpose); or nobody touched a key before the time ran out.
 */
export type CancelledHow = 'cancelled' | 'refused' | 'timed-out';

export function explainCancelled(how: CancelledHow): string {
  switch (how) {
    case 'cancelled':
      return 'Cancelled.';
    case 'refused':
      return 'Your key did not confirm it is you: its PIN or fingerprint was not accepted, or this key is not registered here. Check your PIN and try again; a new key must be registered first.';
    case 'timed-out':
      return explainCode('CEREMONY_CANCELLED');
  }
}

/** The plain sentence for a refusal code (never just the code). */
export function explainCode(code: string): string {
  return (NOTICES as Record<string, string | undefined>)[code] ?? `Something went wrong. Try again. ${CALL_IT}`;
}

const ACTIONS: Record<string, string> = {
  'payment.approve': 'Approve a payment',
  'address.change': 'Change a customer’s address',
  'customer.view': 'View a customer',
};

/** "Approve a payment" for `payment.approve`; an unknown action by its name. */
export function actionLabel(action: string): string {
  return ACTIONS[action] ?? `“${action}”`;
}

const LEVELS: Record<string, string> = {
  presence: 'key tap',
  verified: 'key with PIN or fingerprint',
  hardware: 'approved hardware key with PIN or fingerprint',
};

export function levelLabel(level: string): string {
  return LEVELS[level] ?? level;
}

const REASONS: Record<string, string> = {
  'level-below-required': 'it needs a stronger check than the one you signed in with',
  'break-glass-action-not-allowed': 'temporary access without your key does not allow this',
  // The backend's reason when it refuses a break-glass session an action (exchange and step-up alike).
  'break-glass': 'temporary access without your key does not allow this',
  'authentication-too-old': 'it has been a while since you last confirmed who you are',
  'not-authenticated': 'nobody has confirmed who they are yet',
  'action-unknown': 'the policy does not know this action',
  'channel-unknown': 'the policy does not know this console’s channel',
  'action-not-on-channel': 'it is not allowed on this kind of console',
  'level-not-allowed-on-channel': 'this console does not accept that kind of check',
  'level-unreachable-on-channel': 'no check allowed on this console is strong enough for it',
  'session-lifetime-exceeded': 'your session has lasted as long as it may',
  'action-allowed': 'the policy allows it',
  'sign-in-allowed': 'the policy allows it',
};

/** Decision reasons as one plain clause each ("it needs a stronger check than your sign-in…"). */
export function explainReasons(reasons: readonly string[]): string[] {
  return reasons.map((r) => REASONS[r] ?? r.replace(/-/g, ' '));
}

type Identity = AgentStatusView['identity'];

/** Why a console must be enrolled again, in plain words. */
export function explainReEnrolment(identity: Extract<Identity, { kind: 're-enrolment-required' }>): string {
  switch (identity.reason) {
    case 'revoked':
      return 'IT has withdrawn this console’s access (it was revoked). Nobody can sign in here until it is enrolled again.';
    case 'key-missing':
      return 'This console’s own secret key is missing from the computer’s credential store (for example after a reinstall).';
    case 'state-unreadable':
      return 'This console’s saved settings could not be read. A copy was kept for IT.';
    case 'unknown-to-backend':
      return 'The Baton server no longer knows this console (it may have been removed).';
  }
}

/** Why a session left the console: "Ada Teller's session was ended by IT (access withdrawn)." */
export function explainEnded(ended: NonNullable<AgentStatusView['lastEnded']>): string {
  const who = `${ended.operatorName}’s session`;
  if (ended.state === 'revoked') {
    const what = ended.reason.startsWith('credential')
      ? 'their key was withdrawn'
      : ended.reason.startsWith('operator')
        ? 'their access was withdrawn'
        : ended.reason.startsWith('console')
          ? 'this console’s access was withdrawn'
          : 'the session was revoked';
    return `${who} was ended by IT: ${what}.`;
  }
  if (ended.state === 'expired') {
    return ended.reason === 'superseded'
      ? `${who} was replaced by a newer one.`
      : `${who} has ended: it was left locked too long, or reached its time limit.`;
  }
  if (ended.reason === 'sign-out') return `${ended.operatorName} signed out.`;
  if (ended.reason === 'evicted-by-session-limit') {
    return `${who} was closed to make room: this console holds only a few sessions at once.`;
  }
  if (ended.reason === 'ended-by-admin') return `${who} was ended by IT.`;
  return `${who} was ended.`;
}

/** "15 minutes", "1 minute", "30 seconds". */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  const minutes = Math.round(seconds / 60);
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}

export function clockTime(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
] as const;

function dayKey(d: Date): string {
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

/** When something happens, as a teller reads it: "at 17:30" today, "tomorrow at 08:15", "on 6 December at 09:00". */
export function whenAt(ms: number, now: number): string {
  const at = new Date(ms);
  const today = new Date(now);
  if (dayKey(at) === dayKey(today)) return `at ${clockTime(ms)}`;
  const tomorrow = new Date(today.getFullYear(), today.getMonth(), today.getDate() + 1);
  if (dayKey(at) === dayKey(tomorrow)) return `tomorrow at ${clockTime(ms)}`;
  const year = at.getFullYear() === today.getFullYear() ? '' : ` ${at.getFullYear()}`;
  return `on ${at.getDate()} ${MONTHS[at.getMonth()]}${year} at ${clockTime(ms)}`;
}
