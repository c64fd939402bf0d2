import { z } from 'zod';

/** SSF 1.0 §7.1.1: the subjects a new stream starts with. */
export const DEFAULT_SUBJECTS = ['ALL', 'NONE'] as const;
export type DefaultSubjects = (typeof DEFAULT_SUBJECTS)[number];

/**
 * The Shared Signals transmitter's settings (config file: `"ssf": {…}`, `defaultSubjects` also from the environment;
 * docs/shared-signals.md).
 * Everything has a default: a backend with no `ssf` section transmits to the streams receivers create.
 */
export const SsfTransmitterConfigSchema = z.strictObject({
  /**
   * The transmitter's issuer: the public base URL receivers reach this backend at (`iss` of every
   * SET; `/.well-known/ssf-configuration` is served under it). Default: the admin origin.
   */
  issuer: z.url({ protocol: /^https?$/ }).optional(),
  /** The algorithm of new signing keys: RS256 (2048-bit, the CAEP interop profile) or ES256. */
  signingAlgorithm: z.enum(['RS256', 'ES256']).default('RS256'),
  /** How long a retired signing key stays in the JWKS (SETs it signed may still be queued). */
  keyOverlapHours: z
    .int()
    .min(1)
    .max(24 * 90)
    .default(24 * 7),
  /** First retry of a failed push after this (doubling, with jitter, up to `retryMaxMs`). */
  retryBaseMs: z.int().min(1).max(600_000).default(1000),
  retryMaxMs: z.int().min(1).max(3_600_000).default(300_000),
  /** A push stream whose receiver has failed for this long is paused (shown so; events keep queueing). */
  pauseAfterSeconds: z
    .int()
    .min(1)
    .max(30 * 24 * 3600)
    .default(24 * 3600),
  /** A push waits this long for the receiver's answer. */
  pushTimeoutMs: z.int().min(100).max(120_000).default(10_000),
  /** Pushes in flight per stream (each to a different subject: order per subject is kept). */
  pushConcurrency: z.int().min(1).max(64).default(8),
  /** A polled SET not acknowledged within this is handed out again. */
  pollRedeliverSeconds: z.int().min(1).max(3600).default(30),
  /** The longest a long poll (`returnImmediately: false`) is held open. */
  pollWaitSeconds: z.int().min(1).max(300).default(25),
  /**
   * How long a node's delivery lease on a stream (and the fan-out lease: one node maps the event log to
   * SETs) lasts without renewal: a node that dies is replaced after at most this long.
   */
  leaseSeconds: z.int().min(2).max(300).default(15),
  /** Streams per receiver. */
  maxStreamsPerReceiver: z.int().min(1).max(100).default(10),
  /**
   * SSF 1.0 §7.1.1 `default_subjects`, advertised in the metadata and given to each stream created from then on (a
   * stream keeps the value it was created with): `ALL`, every subject's events until the receiver removes the
   * subject; `NONE`, only the events of subjects the receiver added (`/ssf/subjects/add`).
   * Env `BATON_SSF_DEFAULT_SUBJECTS`.
   */
  defaultSubjects: z
    .enum(DEFAULT_SUBJECTS, { error: (issue) => `expected ALL or NONE, not ${JSON.stringify(issue.input)}` })
    .default('ALL'),
});
export type SsfTransmitterConfig = z.infer<typeof SsfTransmitterConfigSchema>;
