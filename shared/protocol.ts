import { z } from 'zod';
import { AssuranceEventSchema, IdSchema } from './events.js';
import { PolicySchema } from './policy.js';

/**
 * The console channel: one WebSocket per console at `CONSOLE_WS_PATH`, authenticated by the
 * console's signature on the upgrade request before anything else is accepted.
 * Every message is a JSON text frame validated against these schemas before it is acted on.
 */
export const PROTOCOL_VERSION = 1;
export const CONSOLE_WS_PATH = '/v1/console/ws';
/** Largest frame either side accepts; a larger one closes the socket with 1009. */
export const MAX_MESSAGE_BYTES = 256 * 1024;
export const MAX_EVENTS_PER_BATCH = 500;
/**
 * `events` batches awaiting their `events-ack` at once, per connection: the agent sends at most this
 * many ahead, and the backend stops reading a console's socket while it holds this many uncommitted.
 */
export const MAX_BATCHES_IN_FLIGHT = 4;

/**
 * Close codes, one per kind of violation (4000-4999 are application codes). A peer that misses a
 * heartbeat is terminated without a close frame (it is not there to read one): it sees 1006.
 */
export const CLOSE_CODES = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  MESSAGE_TOO_BIG: 1009,
  BAD_JSON: 4000,
  SCHEMA_INVALID: 4002,
  CONSOLE_REVOKED: 4003,
  MESSAGE_TYPE_UNKNOWN: 4004,
  SUPERSEDED: 4005,
  HELLO_REQUIRED: 4006,
  INTERNAL: 4500,
  /** Never sent: what a socket reports when the connection dropped without a close frame. */
  ABNORMAL: 1006,
} as const;
export type CloseCodeName = keyof typeof CLOSE_CODES;

/**
 * A policy's content hash: lower-case hex SHA-256 of the canonical JSON (`canonical-json.ts`) of the
 * policy document as `PolicySchema` parses it. Both sides compute it the same way; a cached policy
 * is trusted only while its hash matches the backend's, not merely its version number.
 */
export const PolicyHashSchema = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lower-case hex SHA-256');

// ---- agent → backend ----

export const HelloMessageSchema = z.strictObject({
  type: z.literal('hello'),
  protocol: z.literal(PROTOCOL_VERSION),
  /** Last policy version the agent holds (0: none). */
  policyVersion: z.int().nonnegative(),
  /**
   * Hash of the policy the agent holds, computed from the document itself (absent: none held). The
   * backend sends its policy when the version or this hash differs from its own.
   */
  policyHash: PolicyHashSchema.optional(),
  /** Last revocation epoch the agent has applied (0: none). */
  revocationEpoch: z.int().nonnegative(),
  agentVersion: z.string().max(64),
  /** The agent's outbox backlog when it connected: events journaled and not yet acknowledged. */
  outbox: z.strictObject({ pending: z.int().nonnegative(), max: z.int().positive() }).optional(),
});

export const EventsMessageSchema = z.strictObject({
  type: z.literal('events'),
  events: z.array(AssuranceEventSchema).min(1).max(MAX_EVENTS_PER_BATCH),
});

export const AckMessageSchema = z.discriminatedUnion('of', [
  z.strictObject({ type: z.literal('ack'), of: z.literal('revocation'), epoch: z.int().positive() }),
  z.strictObject({ type: z.literal('ack'), of: z.literal('policy'), version: z.int().positive() }),
  z.strictObject({ type: z.literal('ack'), of: z.literal('command'), commandId: IdSchema }),
]);

export const AGENT_MESSAGE_TYPES = ['hello', 'events', 'ack'] as const;
export const AgentMessageSchema = z.union([HelloMessageSchema, EventsMessageSchema, AckMessageSchema]);
export type AgentMessage = z.infer<typeof AgentMessageSchema>;
export type HelloMessage = z.infer<typeof HelloMessageSchema>;

// ---- backend → agent ----

/** `service`: a service account (docs/service-accounts.md); it concerns no console, only app servers' revocation stream. */
export const REVOCATION_KINDS = ['operator', 'credential', 'console', 'session', 'service'] as const;
export type RevocationKind = (typeof REVOCATION_KINDS)[number];

export const RevocationItemSchema = z.strictObject({
  epoch: z.int().positive(),
  kind: z.enum(REVOCATION_KINDS),
  targetId: z.string().min(1).max(1024),
  /** For credential and session revocations: the operator concerned. */
  operatorId: IdSchema.nullable(),
  reason: z.string().max(500),
  at: z.int().nonnegative(),
});
export type RevocationItem = z.infer<typeof RevocationItemSchema>;

export const WelcomeMessageSchema = z.strictObject({
  type: z.literal('welcome'),
  consoleId: IdSchema,
  channel: z.string(),
  /** Highest sequence number stored durably for this console (0: none). */
  ackedSeq: z.int().nonnegative(),
  /** Hash of the event at `ackedSeq` (genesis when none): where the agent's chain continues. */
  lastHash: z.string(),
  serverTime: z.int(),
  heartbeatSeconds: z.int().positive(),
  /**
   * The backend's current policy version and revocation epoch. Anything newer than the agent's
   * `hello` follows at once (`policy`, `revocation`); the agent treats itself as caught up only once
   * it holds both, so a revocation that landed while it was offline applies before anything else.
   */
  policyVersion: z.int().nonnegative(),
  /** Hash of the backend's current policy: the agent is caught up only when it holds a policy with this hash. */
  policyHash: PolicyHashSchema,
  revocationEpoch: z.int().nonnegative(),
});

export const EventsAckMessageSchema = z.strictObject({
  type: z.literal('events-ack'),
  upToSeq: z.int().nonnegative(),
  findings: z.array(z.strictObject({ code: z.string(), seq: z.int() })).max(MAX_EVENTS_PER_BATCH),
});

export const PolicyMessageSchema = z.strictObject({
  type: z.literal('policy'),
  version: z.int().positive(),
  policy: PolicySchema,
  /** The policy's hash; the agent refuses a policy whose content does not hash to it. */
  hash: PolicyHashSchema,
});

export const RevocationMessageSchema = z.strictObject({
  type: z.literal('revocation'),
  /** The backend's current revocation epoch; the agent acknowledges it once applied. */
  epoch: z.int().positive(),
  items: z.array(RevocationItemSchema).max(10_000),
});

/**
 * Why the backend tells a console to end a session (`command` `end-session`, docs/protocol.md
 * "Commands"): a stable code, never an admin's free text (that stays in the backend's events).
 */
export const END_SESSION_REASONS = ['ended-by-admin', 'evicted-by-session-limit'] as const;
export type EndSessionReason = (typeof END_SESSION_REASONS)[number];

export function isEndSessionReason(value: string): value is EndSessionReason {
  return (END_SESSION_REASONS as readonly string[]).includes(value);
}

export const CommandMessageSchema = z.strictObject({
  type: z.literal('command'),
  commandId: IdSchema,
  command: z.literal('end-session'),
  sessionId: IdSchema,
  /**
   * One of END_SESSION_REASONS. Kept a string on the wire: an agent takes a code it does not know
   * (a newer backend's) as a plain end, and a backend from before the codes sent an admin's text.
   */
  reason: z.string().max(500),
});

export const ErrorMessageSchema = z.strictObject({
  type: z.literal('error'),
  code: z.string(),
  message: z.string(),
  fatal: z.boolean(),
});

export const BackendMessageSchema = z.discriminatedUnion('type', [
  WelcomeMessageSchema,
  EventsAckMessageSchema,
  PolicyMessageSchema,
  RevocationMessageSchema,
  CommandMessageSchema,
  ErrorMessageSchema,
]);
export type BackendMessage = z.infer<typeof BackendMessageSchema>;
export type WelcomeMessage = z.infer<typeof WelcomeMessageSchema>;
export type RevocationMessage = z.infer<typeof RevocationMessageSchema>;
export type CommandMessage = z.infer<typeof CommandMessageSchema>;
