import { isTakenAsFact, type StoredEvent } from '../../../shared/events.js';
import { BATON_SET_EVENT_PREFIX, CAEP_EVENT_PREFIX, type SimpleSubject, type SubjectId } from '../set.js';

/**
 * Which Shared Signals event a Baton assurance event becomes (docs/events.md, "Shared Signals"):
 *
 * | Baton event (origin) | SET event type |
 * |---|---|
 * | session-established (backend) | CAEP session-established (`acr`, `amr`) |
 * | session-resumed (backend: a resume within the continuity window, checked by the backend) | CAEP session-presented |
 * | session-revoked (backend) | CAEP session-revoked (always `reason_admin`) |
 * | assurance-level-change (backend, step-up) | CAEP assurance-level-change (NIST-AAL) |
 * | credential-change, success (backend) | CAEP credential-change (fido2-roaming / fido2-platform, AAGUID) |
 * | device-compliance-change (console revoked) | CAEP device-compliance-change |
 * | console-enrolled (a console enrolled or re-enrolled) | CAEP device-compliance-change → compliant |
 * | session-locked, session-suspended, session-switched, session-resumed (console; backend with reason `offline-grace`: an offline resume), session-ended, session-expired, operator-revoked | `urn:baton:event:<type>` (only to streams that request it) |
 * | service-revoked (an admin revoked a service account; subject: `application`) | `urn:baton:event:service-revoked` (only to streams that request it) |
 *
 * Events the backend does not take as facts (refused, marked) are never transmitted.
 */

export const CAEP_SUPPORTED = [
  'session-established',
  'session-presented',
  'session-revoked',
  'assurance-level-change',
  'credential-change',
  'device-compliance-change',
].map((t) => `${CAEP_EVENT_PREFIX}${t}`);

export const BATON_SUPPORTED = [
  'session-locked',
  'session-suspended',
  'session-switched',
  'session-resumed',
  'session-ended',
  'session-expired',
  'operator-revoked',
  'service-revoked',
].map((t) => `${BATON_SET_EVENT_PREFIX}${t}`);

/** Every event type a stream may request. */
export const EVENTS_SUPPORTED = [...CAEP_SUPPORTED, ...BATON_SUPPORTED];

export interface MappedEvent {
  type: string;
  event: Record<string, unknown>;
  subject: SubjectId;
}

export interface SubjectContext {
  /** The transmitter's issuer: a user is `iss_sub` in its namespace. */
  issuer: string;
  /** The site (tenant) of a console, when it has one. */
  siteOf(consoleId: string): string | undefined;
}

const opaque = (id: string): SimpleSubject => ({ format: 'opaque', id });

/**
 * The complex subject of an event: user (operator), device (console), session, tenant (the console's site),
 * application (a service account: a non-human identity, named by its id).
 */
export function subjectOf(event: StoredEvent, ctx: SubjectContext): SubjectId | undefined {
  const { operator, console, session, service } = event.subject;
  const site = console === undefined ? undefined : ctx.siteOf(console);
  const members = {
    ...(operator === undefined ? {} : { user: { format: 'iss_sub', iss: ctx.issuer, sub: operator } as SimpleSubject }),
    ...(console === undefined ? {} : { device: opaque(console) }),
    ...(session === undefined ? {} : { session: opaque(session) }),
    ...(site === undefined || site === null ? {} : { tenant: opaque(site) }),
    ...(service === undefined ? {} : { application: opaque(service) }),
  };
  if (Object.keys(members).length === 0) return undefined;
  return { format: 'complex', ...members };
}

const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

/** The SET event of a Baton event, or undefined when it has none. */
export function mapEvent(event: StoredEvent, ctx: SubjectContext): MappedEvent | undefined {
  if (!isTakenAsFact(event)) return undefined;
  const subject = subjectOf(event, ctx);
  if (subject === undefined) return undefined;
  const detail = event.detail ?? {};
  const common = { event_timestamp: Math.floor(event.time / 1000) };
  const backend = event.origin === 'backend';
  const caep = (name: string, body: Record<string, unknown>): MappedEvent => ({
    type: `${CAEP_EVENT_PREFIX}${name}`,
    event: { ...common, ...body },
    subject,
  });
  switch (event.type as string) {
    case 'session-established':
      if (!backend || event.outcome !== 'success') return undefined;
      return caep('session-established', {
        initiating_entity: 'user',
        ...(event.assurance === undefined ? {} : { acr: event.assurance.acr, amr: event.assurance.amr }),
      });
    case 'session-resumed':
      // An offline resume (the console verified it; the backend records its own `session-resumed`, reason
      // `offline-grace`, when it accepts it) has no CAEP type: only streams asking for Baton's URI get it.
      if (!backend || event.reasons.includes('offline-grace')) return baton(event, subject, common);
      return caep('session-presented', {
        initiating_entity: 'user',
        ...(event.assurance === undefined ? {} : { acr: event.assurance.acr, amr: event.assurance.amr }),
      });
    case 'session-revoked': {
      const reason = text(detail.reason_admin) ?? `Session revoked (${event.reasons[0] ?? 'revoked'})`;
      return caep('session-revoked', {
        initiating_entity: event.reasons.some((r) => r.includes('revoked')) ? 'admin' : 'system',
        reason_admin: { en: reason },
      });
    }
    case 'assurance-level-change':
      if (event.outcome !== 'success' || text(detail.current_level) === undefined) return undefined;
      return caep('assurance-level-change', {
        initiating_entity: 'user',
        namespace: text(detail.namespace) ?? 'NIST-AAL',
        current_level: detail.current_level,
        ...(text(detail.previous_level) === undefined ? {} : { previous_level: detail.previous_level }),
        ...(text(detail.change_direction) === undefined ? {} : { change_direction: detail.change_direction }),
      });
    case 'credential-change': {
      if (event.outcome !== 'success') return undefined;
      const changeType = text(detail.change_type);
      if (changeType === undefined) return undefined;
      // A passkey that may be synced (not device-bound) lives on a platform; a device-bound one on a key.
      const credentialType =
        detail.deviceBound === false ? 'fido2-platform' : (text(detail.credential_type) ?? 'fido2-roaming');
      return caep('credential-change', {
        initiating_entity: changeType === 'revoke' ? 'admin' : 'user',
        credential_type: credentialType,
        change_type: changeType,
        ...(text(detail.fido2_aaguid) === undefined ? {} : { fido2_aaguid: detail.fido2_aaguid }),
        ...(text(detail.authenticator_model) === undefined ? {} : { friendly_name: detail.authenticator_model }),
        ...(text(detail.reason_admin) === undefined ? {} : { reason_admin: { en: detail.reason_admin } }),
      });
    }
    case 'device-compliance-change':
      if (event.outcome !== 'success') return undefined;
      return caep('device-compliance-change', {
        initiating_entity: 'admin',
        previous_status: text(detail.previous_status) ?? 'compliant',
        current_status: text(detail.current_status) ?? 'not-compliant',
        ...(text(detail.reason_admin) === undefined ? {} : { reason_admin: { en: detail.reason_admin } }),
      });
    case 'console-enrolled':
      if (event.outcome !== 'success') return undefined;
      return caep('device-compliance-change', {
        initiating_entity: 'admin',
        previous_status: 'not-compliant',
        current_status: 'compliant',
      });
    case 'session-locked':
    case 'session-suspended':
    case 'session-switched':
    case 'session-ended':
    case 'session-expired':
    case 'operator-revoked':
      return baton(event, subject, common);
    case 'service-revoked':
      // App servers that accept service tokens refuse the service's tokens issued up to now.
      if (event.outcome !== 'success') return undefined;
      return baton(event, subject, common);
    default:
      return undefined;
  }
}

function baton(event: StoredEvent, subject: SubjectId, common: Record<string, unknown>): MappedEvent {
  return {
    type: `${BATON_SET_EVENT_PREFIX}${event.type}`,
    event: {
      ...common,
      baton_event_id: event.id,
      origin: event.origin,
      reasons: event.reasons,
      ...(event.assurance === undefined ? {} : { level: event.assurance.level, aal: event.assurance.aal }),
    },
    subject,
  };
}

/**
 * The `txn` of an event's SETs: the event that caused it. The backend records the events of one cause in one
 * unit of work, whose later events name its first (`detail.causeEventId`); an event the backend records for a
 * console's event names that one (`detail.consoleEventId`). Otherwise the event is its own cause. Only the
 * backend's own details are read: a console's are its claims.
 */
export function txnOf(event: StoredEvent): string {
  if (event.origin !== 'backend') return event.id;
  const cause = event.detail?.['causeEventId'] ?? event.detail?.['consoleEventId'];
  return typeof cause === 'string' ? cause : event.id;
}
