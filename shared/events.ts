import { z } from 'zod';
import { LevelSchema } from './policy.js';

/**
 * Assurance events: every fact that changes trust. Names follow OpenID CAEP where CAEP has the
 * event; lock, resume, switch and Baton's own facts use `urn:baton:event:<name>`.
 */
export const CAEP_PREFIX = 'https://schemas.openid.net/secevent/caep/event-type/';
export const BATON_EVENT_PREFIX = 'urn:baton:event:';

/** Event names that are CAEP event types, with their CAEP name. */
const CAEP_TYPES = {
  'session-established': 'session-established',
  'session-revoked': 'session-revoked',
  'assurance-level-change': 'assurance-level-change',
  'credential-change': 'credential-change',
  'device-compliance-change': 'device-compliance-change',
} as const;

export const EVENT_TYPES = [
  // CAEP
  'session-established',
  'session-revoked',
  'assurance-level-change',
  'credential-change',
  'device-compliance-change',
  // Consoles and operators
  'console-enrolled',
  'console-enrolment-token-issued',
  'operator-created',
  'operator-enrolment-code-issued',
  'operator-enrolled',
  'operator-revoked',
  // Sign-in and sessions
  'sign-in-failed',
  'step-up-failed',
  'session-resumed',
  'session-stepped-up',
  'session-locked',
  'session-suspended',
  'session-switched',
  'session-expired',
  'session-ended',
  'credential-counter-regressed',
  // Policy and revocation
  'policy-decision',
  'policy-changed',
  'revocation-acknowledged',
  // Agent
  'agent-offline',
  'agent-online',
  'break-glass-used',
  'outbox-near-full',
  // Admin and integrity
  'admin-action',
  'integrity-sequence-gap',
  'integrity-sequence-conflict',
  'integrity-chain-broken',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export function eventTypeUri(type: EventType): string {
  return type in CAEP_TYPES ? `${CAEP_PREFIX}${type}` : `${BATON_EVENT_PREFIX}${type}`;
}

export const EVENT_OUTCOMES = ['success', 'failure', 'allow', 'step-up', 'deny', 'info'] as const;
export type EventOutcome = (typeof EVENT_OUTCOMES)[number];

/** Identifiers: opaque, short, printable. */
export const IdSchema = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'expected an identifier of 1-128 [A-Za-z0-9._:-]');
export const HashSchema = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lower-case SHA-256 hex digest');

/** The chain starts from this value: the first event of a console carries it as `prevHash`. */
export const GENESIS_HASH = '0'.repeat(64);

export const SubjectSchema = z.strictObject({
  operator: IdSchema.optional(),
  console: IdSchema.optional(),
  session: IdSchema.optional(),
  credential: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,1024}$/)
    .optional(),
});

export const AssuranceContextSchema = z.strictObject({
  level: LevelSchema,
  aal: z.int().min(1).max(3),
  acr: z.string().max(100),
  amr: z.array(z.string().max(20)).max(10),
  /** When the authentication that set this level happened (epoch ms). */
  authTime: z.int().nonnegative(),
});

const DetailValue = z.union([z.string().max(500), z.number(), z.boolean(), z.null()]);

export const AssuranceEventSchema = z.strictObject({
  id: z.uuid(),
  /** The emitter's sequence number: 1, 2, 3, … without gaps. */
  seq: z.int().positive(),
  /** When it happened (epoch ms). */
  time: z.int().nonnegative(),
  type: z.enum(EVENT_TYPES),
  subject: SubjectSchema,
  assurance: AssuranceContextSchema.optional(),
  outcome: z.enum(EVENT_OUTCOMES),
  reasons: z.array(z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/)).max(16),
  detail: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,39}$/), DetailValue).optional(),
  /** SHA-256 of the canonical JSON of the previous event from the same emitter. */
  prevHash: HashSchema,
});

export type Subject = z.infer<typeof SubjectSchema>;
export type AssuranceContext = z.infer<typeof AssuranceContextSchema>;
export type AssuranceEvent = z.infer<typeof AssuranceEventSchema>;
/** An event before its emitter gives it a sequence number and chains it. */
export type EventDraft = Omit<AssuranceEvent, 'id' | 'seq' | 'time' | 'prevHash'> & { time?: number };

/** An event as the backend stores and serves it, with where it came from. */
export interface StoredEvent extends AssuranceEvent {
  /** `backend` or the console id that emitted it. */
  origin: string;
  /** SHA-256 of this event's canonical JSON (the next event's `prevHash`). */
  hash: string;
  receivedAt: number;
  /** Integrity findings recorded when the event was stored (gap, chain break). */
  integrity: string[];
  /** Position in the store: a cursor for paging and live following. */
  cursor: number;
}

/**
 * Turns a draft into the next event of an emitter's chain. Pure: the caller supplies the id, the
 * sequence number and the previous event's hash (the backend and the agent each hash with their runtime).
 */
export function chainEvent(
  draft: EventDraft,
  next: { id: string; seq: number; prevHash: string; now: number },
): AssuranceEvent {
  return {
    id: next.id,
    seq: next.seq,
    time: draft.time ?? next.now,
    type: draft.type,
    subject: draft.subject,
    ...(draft.assurance === undefined ? {} : { assurance: draft.assurance }),
    outcome: draft.outcome,
    reasons: draft.reasons,
    ...(draft.detail === undefined ? {} : { detail: draft.detail }),
    prevHash: next.prevHash,
  };
}
