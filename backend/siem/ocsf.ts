import { eventTypeUri, isTakenAsFact, type EventType, type StoredEvent } from '../../shared/events.js';

/**
 * Baton's stored events as OCSF records (Open Cybersecurity Schema Framework 1.4), what a SIEM's
 * parsers already know: sign-ins, resumes, step-ups and every end of a session as Authentication
 * (class 3002), operator and passkey changes (Baton's own, a SCIM directory's, an admin's) as Account
 * Change (class 3001), everything else as a Base Event (class 0). Nothing of Baton's own is dropped: the whole stored event (type URI, outcome,
 * reasons, assurance, detail, integrity flags, chain position, cursor) is kept under
 * `unmapped.baton`, so a rule may use either vocabulary. Pure; docs/siem.md has the table.
 */
// 1.4.0: the first version with Account Change activity 12 Unlock (1.4 only added to what 1.3 had).
export const OCSF_VERSION = '1.4.0';

export const OCSF_CLASS = {
  base: { uid: 0, name: 'Base Event', category: 0, categoryName: 'Uncategorized' },
  accountChange: { uid: 3001, name: 'Account Change', category: 3, categoryName: 'Identity & Access Management' },
  authentication: { uid: 3002, name: 'Authentication', category: 3, categoryName: 'Identity & Access Management' },
} as const;
type OcsfClass = (typeof OCSF_CLASS)[keyof typeof OCSF_CLASS];

/** OCSF activity ids used here (Authentication: 1 Logon, 2 Logoff, 99 Other; Account Change: see below). */
interface Mapping {
  cls: OcsfClass;
  activity: number;
  activityName: string;
}

const auth = (activity: number, activityName: string): Mapping => ({
  cls: OCSF_CLASS.authentication,
  activity,
  activityName,
});
const account = (activity: number, activityName: string): Mapping => ({
  cls: OCSF_CLASS.accountChange,
  activity,
  activityName,
});

/** Event types with an OCSF class other than Base Event. A type not listed (or added later) maps to Base Event. */
const MAPPINGS: Partial<Record<EventType, Mapping>> = {
  'session-established': auth(1, 'Logon'),
  'session-resumed': auth(1, 'Logon'),
  'sign-in-failed': auth(1, 'Logon'),
  'session-stepped-up': auth(99, 'Step-up'),
  'assurance-level-change': auth(99, 'Step-up'),
  'step-up-failed': auth(99, 'Step-up'),
  'session-switched': auth(99, 'Switch'),
  // The session stays: the screen is locked (or the operator switched away), not signed off.
  'session-locked': auth(99, 'Lock'),
  'session-suspended': auth(99, 'Lock'),
  'session-expired': auth(2, 'Logoff'),
  'session-ended': auth(2, 'Logoff'),
  'session-revoked': auth(2, 'Logoff'),
  'operator-created': account(1, 'Create'),
  'operator-enrolled': account(10, 'MFA Factor Enable'),
  'operator-enrolment-code-issued': account(99, 'Enrolment code issued'),
  'operator-revoked': account(5, 'Disable'),
  'credential-counter-regressed': account(9, 'Lock'),
};

/**
 * Types that record several kinds of change, told apart by their reason (the first): a SCIM
 * directory's change to a User, which is an operator (`scim-provisioning`, backend/scim/scim-service.ts),
 * and an admin's change to an operator or a passkey (`admin-action`). Only an event naming an operator
 * is mapped (Account Change is about a user); any other reason of these types, and a Group change
 * (which names no operator: its effect on each member is that member's `operator-updated`), stays a
 * Base Event.
 * - Roles: Attach/Detach Policy would say which way, but `operator-updated` carries the roles the
 *   directory's groups now give (and the name), not what was added or removed, and one change may
 *   add one role and remove another (or only rename); so both role changes are 99, named, with the
 *   roles in `unmapped.baton.detail`.
 * - A passkey reinstated after a counter regression is the Unlock of the Lock that suspended it
 *   (`credential-counter-regressed`, 9 Lock).
 * - A User enabled again is Enable (the directory's view), though Baton gives it a new operator (its
 *   `operator-created`, with the old one as `detail.previous`), who enrols a passkey again.
 */
const MAPPINGS_BY_REASON: Partial<Record<EventType, Readonly<Record<string, Mapping>>>> = {
  'scim-provisioning': {
    'user-created': account(1, 'Create'),
    'user-reactivated': account(2, 'Enable'),
    'user-deactivated': account(5, 'Disable'),
    'user-deleted': account(6, 'Delete'),
    'user-replaced': account(99, 'Attribute Change'),
    'user-patched': account(99, 'Attribute Change'),
    'operator-updated': account(99, 'Roles or Name Change'),
  },
  'admin-action': {
    'operator-roles-changed': account(99, 'Roles Change'),
    'operator-unlocked': account(12, 'Unlock'),
    'credential-reinstated': account(12, 'Unlock'),
  },
};

function mappingOf(event: StoredEvent): Mapping | undefined {
  // A credential change is the passkey registered (factor enabled) or revoked (factor disabled).
  if (event.type === 'credential-change') {
    return event.detail?.['change_type'] === 'revoke'
      ? account(11, 'MFA Factor Disable')
      : account(10, 'MFA Factor Enable');
  }
  const byReason = MAPPINGS_BY_REASON[event.type];
  if (byReason !== undefined) {
    const reason = event.reasons[0];
    if (event.subject.operator === undefined || reason === undefined || !Object.hasOwn(byReason, reason)) {
      return undefined;
    }
    return byReason[reason];
  }
  return MAPPINGS[event.type];
}

/** OCSF severity: 1 Informational, 3 Medium (a refusal or failure), 4 High (an integrity finding). */
function severityOf(event: StoredEvent): { id: number; name: string } {
  if (event.type.startsWith('integrity-') || event.type === 'credential-counter-regressed' || !isTakenAsFact(event)) {
    return { id: 4, name: 'High' };
  }
  if (event.outcome === 'failure' || event.outcome === 'deny') return { id: 3, name: 'Medium' };
  return { id: 1, name: 'Informational' };
}

/** OCSF status: 1 Success, 2 Failure, 99 Other (a decision or a plain fact). */
function statusOf(event: StoredEvent): { id: number; name: string } {
  switch (event.outcome) {
    case 'success':
    case 'allow':
      return { id: 1, name: 'Success' };
    case 'failure':
    case 'deny':
      return { id: 2, name: 'Failure' };
    case 'step-up':
      return { id: 99, name: 'Step-up required' };
    case 'info':
      return { id: 99, name: 'Other' };
  }
}

export interface OcsfContext {
  /** The backend's version (metadata.product.version). */
  productVersion: string;
}

export type OcsfRecord = Record<string, unknown> & {
  class_uid: number;
  activity_id: number;
  type_uid: number;
  time: number;
  metadata: Record<string, unknown> & { uid: string; sequence: number; version: string };
};

/** One stored event as an OCSF record. */
export function toOcsf(event: StoredEvent, context: OcsfContext): OcsfRecord {
  const mapping = mappingOf(event) ?? {
    cls: OCSF_CLASS.base,
    activity: 99,
    activityName: event.type,
  };
  const severity = severityOf(event);
  const status = statusOf(event);
  const { subject, assurance } = event;
  const record: OcsfRecord = {
    category_uid: mapping.cls.category,
    category_name: mapping.cls.categoryName,
    class_uid: mapping.cls.uid,
    class_name: mapping.cls.name,
    activity_id: mapping.activity,
    activity_name: mapping.activityName,
    type_uid: mapping.cls.uid * 100 + mapping.activity,
    type_name: `${mapping.cls.name}: ${mapping.activityName}`,
    time: event.time,
    severity_id: severity.id,
    severity: severity.name,
    status_id: status.id,
    status: status.name,
    message: `${event.type} (${event.outcome})${event.reasons.length > 0 ? `: ${event.reasons.join(', ')}` : ''}`,
    metadata: {
      version: OCSF_VERSION,
      uid: event.id,
      sequence: event.cursor,
      logged_time: event.receivedAt,
      log_name: event.origin === 'backend' ? 'baton-backend' : 'baton-console',
      product: { name: 'Baton', vendor_name: 'Baton', version: context.productVersion },
      ...(event.integrity.length > 0 ? { labels: event.integrity } : {}),
    },
  };
  if (subject.operator !== undefined) record['user'] = { uid: subject.operator, type_id: 1, type: 'User' };
  if (subject.console !== undefined) record['device'] = { uid: subject.console, type_id: 2, type: 'Desktop' };
  if (subject.session !== undefined) {
    record['session'] = {
      uid: subject.session,
      ...(assurance === undefined ? {} : { is_mfa: assurance.amr.includes('mfa') }),
    };
  }
  if (mapping.cls.uid === OCSF_CLASS.authentication.uid) {
    // WebAuthn has no OCSF protocol id: 99 Other, named.
    record['auth_protocol_id'] = 99;
    record['auth_protocol'] = 'FIDO2 WebAuthn';
    if (assurance !== undefined) record['is_mfa'] = assurance.amr.includes('mfa');
  }
  record['unmapped'] = {
    baton: {
      type: event.type,
      type_uri: eventTypeUri(event.type),
      origin: event.origin,
      seq: event.seq,
      cursor: event.cursor,
      hash: event.hash,
      prev_hash: event.prevHash,
      outcome: event.outcome,
      reasons: event.reasons,
      subject,
      ...(assurance === undefined ? {} : { assurance }),
      ...(event.detail === undefined ? {} : { detail: event.detail }),
      integrity: event.integrity,
    },
  };
  return record;
}
