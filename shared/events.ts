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
  // Action tokens (docs/action-tokens.md)
  'action-token-issued',
  'action-token-refused',
  // Service accounts (docs/service-accounts.md)
  'service-enrolment-token-issued',
  'service-enrolled',
  'service-key-rotated',
  'service-key-rotation-refused',
  'service-revoked',
  'service-token-issued',
  'service-token-refused',
  // Break-glass (backend side; `break-glass-used` stays the console's own)
  'break-glass-requested',
  'break-glass-granted',
  'break-glass-session-started',
  'break-glass-refused',
  'break-glass-signed-off',
  // Agent
  'agent-offline',
  'agent-online',
  'break-glass-used',
  'outbox-near-full',
  // Admin and integrity
  'admin-action',
  // Shared Signals in and SCIM provisioning (issue 13; docs/events.md)
  'ssf-set-received',
  'ssf-set-refused',
  'scim-provisioning',
  'integrity-sequence-gap',
  'integrity-sequence-conflict',
  'integrity-chain-broken',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/**
 * The types a console may send: what only the workstation witnesses (docs/agent.md, "Who records
 * what"). Every other type states something the backend decided (a session established, an admin
 * action, an integrity finding) and is the backend's alone; a console's event of such a type is
 * kept as evidence, flagged `refused`, and acts on nothing.
 */
export const CONSOLE_EVENT_TYPES = [
  'session-locked',
  'session-switched',
  'session-resumed',
  'session-suspended',
  'session-expired',
  'session-ended',
  'policy-decision',
  'sign-in-failed',
  'step-up-failed',
  'revocation-acknowledged',
  'agent-offline',
  'agent-online',
  'break-glass-used',
  'outbox-near-full',
] as const satisfies readonly EventType[];

/** What only a console witnesses: the backend never records these itself. */
const CONSOLE_ONLY_TYPES: ReadonlySet<EventType> = new Set<EventType>([
  'session-locked',
  'session-switched',
  'revocation-acknowledged',
  'agent-offline',
  'agent-online',
  'break-glass-used',
  'outbox-near-full',
]);

/** The types the backend records on its own chain. */
export const BACKEND_EVENT_TYPES: readonly EventType[] = EVENT_TYPES.filter((t) => !CONSOLE_ONLY_TYPES.has(t));

/** Who may emit which type, by kind of origin (a stored event's `origin` is `backend` or a console id). */
export const EVENT_TYPES_BY_ORIGIN = {
  backend: BACKEND_EVENT_TYPES,
  console: CONSOLE_EVENT_TYPES,
} as const satisfies Record<string, readonly EventType[]>;
export type EmitterKind = keyof typeof EVENT_TYPES_BY_ORIGIN;

const ALLOWED_BY_ORIGIN: Record<EmitterKind, ReadonlySet<string>> = {
  backend: new Set(BACKEND_EVENT_TYPES),
  console: new Set(CONSOLE_EVENT_TYPES),
};

/** Whether an emitter of this kind may send an event of this type. */
export function mayEmit(kind: EmitterKind, type: string): boolean {
  return ALLOWED_BY_ORIGIN[kind].has(type);
}

/**
 * How far a console's `time` may run ahead of the backend's clock when the event arrives (clock
 * skew): an event dated later is refused. The same margin is allowed backwards against the
 * console's previous event (a clock corrected by NTP) before an event is marked backdated.
 */
export const EVENT_CLOCK_SKEW_MS = 5 * 60_000;

/**
 * Flags the backend sets on a stored event (`StoredEvent.integrity`), once, when it stores it.
 * Chain flags say where the event sits in its emitter's chain; the others say why the backend does
 * not take a console's event as a fact. Such an event is kept (it is part of the console's hash
 * chain and it is evidence) but it changes no session and counts in no statistic.
 */
export const EVENT_FLAGS = {
  /** Stored with a number beyond the next expected one. */
  sequenceGap: 'sequence-gap',
  /** Its `prevHash` is not the hash of the emitter's previous event. */
  chainBroken: 'chain-broken',
  /** It filled an earlier gap. */
  late: 'late',
  /** `subject.console` names another console than the sender. */
  subjectConsoleMismatch: 'subject-console-mismatch',
  /** `subject.session` is not a session of the sending console, or `subject.operator` is not its operator (or never signed in there). */
  subjectNotWitnessed: 'subject-not-witnessed',
  /** A type only the backend records (with `refused`). */
  typeNotAllowed: 'type-not-allowed',
  /** Dated more than the clock skew after the backend received it (with `refused`). */
  timeInFuture: 'time-in-future',
  /** Dated more than the clock skew before the console's previous event, or before its enrolment. */
  timeBeforePrevious: 'time-before-previous',
  /** A lock, resume or end the backend did not apply to the session (e.g. a resume outside the grace it observed). */
  sessionChangeRefused: 'session-change-refused',
  /** The backend refused the event as a fact: kept as evidence only. */
  refused: 'refused',
} as const;
export type EventFlag = (typeof EVENT_FLAGS)[keyof typeof EVENT_FLAGS];

/** Flags under which a console's event is not taken as a fact (no session change, no statistic). */
const NOT_A_FACT: ReadonlySet<string> = new Set<string>([
  EVENT_FLAGS.refused,
  EVENT_FLAGS.subjectNotWitnessed,
  EVENT_FLAGS.subjectConsoleMismatch,
  EVENT_FLAGS.timeBeforePrevious,
]);

/** Whether the backend takes a stored event as a fact (false for refused and marked console events). */
export function isTakenAsFact(event: { integrity: readonly string[] }): boolean {
  return !event.integrity.some((flag) => NOT_A_FACT.has(flag));
}

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
  /** A service account (a non-human identity): docs/service-accounts.md. */
  service: IdSchema.optional(),
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
