import { z } from 'zod';
import type { FieldIssue } from './errors.js';
import { AUTHENTICATOR_STATUSES, CERTIFICATION_LEVELS } from './authenticator-metadata.js';
import { ASSURANCE_LEVELS, LEVEL_PROFILES, levelRank } from './levels.js';

/**
 * The policy document: one model for every channel. Admins publish versions; the backend and the
 * agent evaluate the same document with `evaluatePolicy`.
 */
export const CHANNEL_NAME = /^[a-z][a-z0-9-]{1,39}$/;
export const ACTION_NAME = /^[a-z][a-z0-9-]{0,39}(\.[a-z][a-z0-9-]{0,39}){1,3}$/;
const AAGUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const LevelSchema = z.enum(ASSURANCE_LEVELS);

const seconds = (min: number, max: number) => z.int().min(min).max(max);

export const ChannelPolicySchema = z.strictObject({
  /** Idle time before the console locks over the workspace. */
  idleLockSeconds: seconds(5, 3600),
  /** Maximum session lifetime; capped per level by NIST 800-63B rev 4 in the evaluator. */
  maxSessionSeconds: seconds(60, 30 * 24 * 3600),
  /** How long a locked or suspended session can be resumed by its operator. */
  continuitySeconds: seconds(0, 24 * 3600),
  /** Sessions held at once on one console; the oldest suspended one is ended first. */
  maxSessions: z.int().min(1).max(50),
  /** How long a suspended session may be resumed while the backend is unreachable. */
  offlineGraceSeconds: seconds(0, 24 * 3600),
  /** Levels that may start a session on this channel. */
  allowedLevels: z.array(LevelSchema).min(1).max(ASSURANCE_LEVELS.length),
  /** Lifetime of the assurance token the backend issues to a console. */
  tokenTtlSeconds: seconds(30, 3600),
  /**
   * Cap on continuous time without the backend (default `DEFAULT_MAX_OFFLINE_SECONDS`): past it the
   * console locks the session in front and resumes nothing offline until the backend is back, so
   * cutting a console's network cannot hold off a revocation for longer.
   */
  maxOfflineSeconds: seconds(0, 24 * 3600).optional(),
  /**
   * What a backend node does when its view of revocations may be stale (it lost the database or its
   * cluster notifications for longer than its bound): `strict` (the default, when absent) refuses new
   * sign-ins, step-ups, resumes and action-token exchanges with `NODE_STALE`; `best-effort` serves on the last known state
   * and says so in every decision's reasons and events.
   */
  staleNode: z.enum(['strict', 'best-effort']).optional(),
  /**
   * Kiosk (issue 12): tap-and-go. `true`: whenever the lock screen is up, the console waits for a key
   * (touching it is enough, no button first); using the screen for something else cancels the wait.
   * Absent or `false`: the teller presses "Tap your key" first (a desk whose platform authenticator
   * would pop up a system dialog should keep it off).
   */
  tapAndGo: z.boolean().optional(),
});

/** The channel's choice when a backend node's view may be stale (`strict` unless it says otherwise). */
export function staleNodeMode(channel: Pick<ChannelPolicy, 'staleNode'>): 'strict' | 'best-effort' {
  return channel.staleNode ?? 'strict';
}

/** The offline cap when a channel names none: 4 hours, half a shift. */
export const DEFAULT_MAX_OFFLINE_SECONDS = 4 * 3600;

/** The channel's cap on continuous time without the backend, in seconds. */
export function maxOfflineSeconds(channel: Pick<ChannelPolicy, 'maxOfflineSeconds'>): number {
  return channel.maxOfflineSeconds ?? DEFAULT_MAX_OFFLINE_SECONDS;
}

export const ActionPolicySchema = z.strictObject({
  level: LevelSchema,
  /** Maximum age of the authentication for this action, in seconds. */
  maxAgeSeconds: seconds(0, 30 * 24 * 3600),
  /** When present, the action is allowed only on these channels. */
  channels: z.array(z.string().regex(CHANNEL_NAME)).min(1).optional(),
});

export const CredentialRulesSchema = z.strictObject({
  /** Refuse backup-eligible (syncable) credentials at registration and sign-in. */
  deviceBoundOnly: z.boolean(),
  userVerification: z.enum(['required', 'preferred']),
  /** Empty: any authenticator. Otherwise only these AAGUIDs may register. */
  aaguidAllowList: z.array(z.string().regex(AAGUID, 'expected a lower-case AAGUID')).max(200),
  attestation: z.enum(['direct', 'none']),
  /**
   * Lowest FIDO certification level (from the metadata BLOB) a model needs to register and sign in,
   * with its attestation verified by a certificate chain. Absent or `none`: no requirement.
   */
  minCertificationLevel: z.enum(CERTIFICATION_LEVELS).optional(),
  /**
   * Models whose metadata ever reported one of these statuses are refused at registration and sign-in.
   * Absent: `DEFAULT_REFUSED_STATUSES` (compromises and revoked certification); `[]` refuses none.
   */
  refuseStatuses: z.array(z.enum(AUTHENTICATOR_STATUSES)).max(AUTHENTICATOR_STATUSES.length).optional(),
  /**
   * A verified assertion whose signature counter went backwards (a likely copy of the key) is always
   * refused; `suspend` (the default, when absent) also suspends the credential until an admin
   * reinstates or revokes it, `refuse` only refuses that one assertion.
   */
  onCounterRegression: z.enum(['suspend', 'refuse']).optional(),
});

/** What `credentials.onCounterRegression` means when a policy leaves it out. */
export const DEFAULT_ON_COUNTER_REGRESSION = 'suspend' as const;

export const AgentRulesSchema = z.strictObject({
  /** Cap on the agent's on-disk outbox of unacknowledged events. */
  outboxMaxEvents: z.int().min(1000).max(10_000_000),
  heartbeatSeconds: seconds(5, 300),
});

/**
 * A web origin as a browser writes it (`URL.origin`): `https://host[:port]`, or `http://` on loopback only;
 * lower case, no path or trailing slash, no default port. (shared/ has no URL parser: a pattern it is.)
 */
const WORKSPACE_ORIGIN =
  /^(?:https:\/\/(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|http:\/\/(?:localhost|127\.0\.0\.1|\[::1\]))(?::(?!0)(\d{1,5}))?$/;

export const WorkspaceOriginSchema = z
  .string()
  .max(200)
  .refine((value) => {
    const match = WORKSPACE_ORIGIN.exec(value);
    if (match === null) return false;
    const port = match[1] === undefined ? undefined : Number(match[1]);
    const defaultPort = value.startsWith('https:') ? 443 : 80;
    return port === undefined || (port <= 65535 && port !== defaultPort);
  }, 'expected an origin like "https://teller.bank.example" (http only on localhost), lower case, without path or trailing slash');

/**
 * A line-of-business app whose server accepts Baton action tokens (docs/action-tokens.md): the
 * audience the agent asks tokens for, the actions that app performs, and how long its tokens live.
 */
export const AppPolicySchema = z.strictObject({
  /** The app server's identifier (the token's `aud`), e.g. `https://teller.bank.example` or `urn:bank:teller`. */
  audience: z
    .string()
    .min(3)
    .max(200)
    .regex(/^[\x21-\x7e]+$/, 'expected a URL or URN without spaces'),
  name: z.string().min(1).max(100),
  /** The actions this app asks tokens for; each must be an action of the policy. */
  actions: z.array(z.string().regex(ACTION_NAME)).min(1).max(100),
  /**
   * The origins the app's pages are served from in a console's workspace (`https://teller.bank.example`;
   * `http` on loopback only): a workspace gets tokens for this audience only when its page is on one of
   * them (the agent checks it, `AUDIENCE_NOT_FOR_WORKSPACE`). Absent: no workspace gets tokens for it
   * (services still do), so an app added before this field is closed to pages until an admin names them.
   */
  workspaceOrigins: z.array(WorkspaceOriginSchema).min(1).max(20).optional(),
  /** Lifetime of this app's action tokens (default `DEFAULT_ACTION_TOKEN_TTL_SECONDS`), at most 10 minutes. */
  tokenTtlSeconds: seconds(30, 600).optional(),
  /**
   * The EC P-256 public JWK the app server signs its login to Baton's revocation stream with
   * (`GET /v1/tokens/revocations`); absent: the app cannot subscribe and relies on token expiry.
   */
  revocationKey: z
    .looseObject({ kty: z.literal('EC'), crv: z.literal('P-256'), x: z.string().min(1), y: z.string().min(1) })
    .refine((jwk) => !('d' in jwk), 'a public key only (no "d")')
    .optional(),
});

/** An app's token lifetime when it names none: 2 minutes. */
export const DEFAULT_ACTION_TOKEN_TTL_SECONDS = 120;

// ---- service channel (service accounts: docs/service-accounts.md) ----
/** What policy asks of a service that requests a token for one action. */
export const ServiceActionPolicySchema = z.strictObject({
  /**
   * `required`: the request must carry an `actor_token` of a live human session (the operator on whose
   * behalf the service acts, carried as the token's `act`), and that session must meet the action's
   * `actions[name]` level and age; `optional`: one is checked and carried when given; `none`: refused if given.
   */
  actor: z.enum(['required', 'optional', 'none']),
});

/** The `service` channel: which actions services may get tokens for, and for how long. */
export const ServicePolicySchema = z.strictObject({
  /** Lifetime of a service's action token (default `DEFAULT_SERVICE_TOKEN_TTL_SECONDS`), at most 15 minutes. */
  tokenTtlSeconds: seconds(30, 900).optional(),
  /** Longest a client assertion may live (its `exp` from now; default `DEFAULT_SERVICE_ASSERTION_MAX_SECONDS`). */
  assertionMaxSeconds: seconds(10, 600).optional(),
  /** The actions a service may ask a token for; each must be an action of the policy. */
  actions: z.record(z.string().regex(ACTION_NAME), ServiceActionPolicySchema),
});

export const DEFAULT_SERVICE_TOKEN_TTL_SECONDS = 120;

// ---- break-glass (issue 14 item 7: an operator without their key; backend/break-glass/) ----
/** How temporary access without the operator's key is capped (absent: no break-glass at all). */
export const BreakGlassPolicySchema = z.strictObject({
  /** Lifetime of a break-glass session (capped by the channel's own maximum). */
  lifetimeSeconds: seconds(60, 4 * 3600),
  /** The only actions a break-glass session may perform (each an action of the policy whose level is `presence`). */
  actions: z.array(z.string().regex(ACTION_NAME)).max(100),
  /** Break-glass grants per operator in any 24 hours. */
  maxPerOperatorPerDay: z.int().min(1).max(20),
  /** Break-glass grants per site (the console's site) in any 24 hours. */
  maxPerSitePerDay: z.int().min(1).max(1000),
  /** Lifetime of an admin-issued one-time temporary access code (default 15 minutes). */
  codeTtlSeconds: seconds(60, 3600).optional(),
  /**
   * Roles whose operators may approve a break-glass request by tapping their own key on the console
   * (a supervisor; never for themselves). Absent or empty: no supervisor approval, admin codes only.
   */
  approverRoles: z
    .array(z.string().regex(/^[a-z][a-z0-9-]{0,39}$/, 'expected a role name like "supervisor"'))
    .max(20)
    .refine((roles) => new Set(roles).size === roles.length, 'roles must not repeat')
    .optional(),
});
export const DEFAULT_SERVICE_ASSERTION_MAX_SECONDS = 60;

// ---- kiosk: "Ask IT" (issue 12) ----
/** Whom a teller asks for help, as IT wants it shown on the console ("Ask IT"). */
export const SupportContactSchema = z.strictObject({
  /** Who answers: "Branch IT service desk". */
  name: z.string().min(1).max(100),
  phone: z
    .string()
    .min(3)
    .max(40)
    .regex(/^[0-9+()\-. ]+$/, 'expected a phone number (digits, spaces, + - . ( ))')
    .optional(),
  email: z.email().max(200).optional(),
  /** When someone answers: "Mon–Fri 08:00–18:00". */
  hours: z.string().max(100).optional(),
  /** Anything else the teller should know: "Quote the console name on the screen". */
  note: z.string().max(200).optional(),
});
export type SupportContact = z.infer<typeof SupportContactSchema>;

/** The contact per site (the site a console was enrolled for), and one for consoles of any other site. */
export const SupportPolicySchema = z.strictObject({
  default: SupportContactSchema.optional(),
  sites: z.record(z.string().min(1).max(100), SupportContactSchema).optional(),
});

/** The contact shown at a console of `site`: its site's (names compared case-insensitively), else the default. */
export function supportContactFor(policy: Policy, site: string | undefined): SupportContact | undefined {
  const support = policy.support;
  if (support === undefined) return undefined;
  const wanted = site?.trim().toLowerCase();
  const match = Object.entries(support.sites ?? {}).find(([name]) => name.trim().toLowerCase() === wanted);
  return wanted === undefined || wanted === '' || match === undefined ? support.default : match[1];
}

export const PolicySchema = z
  .strictObject({
    channels: z.record(
      z.string().regex(CHANNEL_NAME, 'expected a channel name like "branch-kiosk"'),
      ChannelPolicySchema,
    ),
    credentials: CredentialRulesSchema,
    actions: z.record(
      z.string().regex(ACTION_NAME, 'expected an action name like "payment.approve"'),
      ActionPolicySchema,
    ),
    agent: AgentRulesSchema,
    /** Apps whose servers accept action tokens (absent: none). */
    apps: z.array(AppPolicySchema).max(200).optional(),
    /** The `service` channel: non-human identities (absent: no service gets a token). */
    service: ServicePolicySchema.optional(),
    /** Temporary access for an operator without their key (absent: none). */
    breakGlass: BreakGlassPolicySchema.optional(),
    /** Kiosk: the "Ask IT" contact per site (absent: the console says only "Ask IT"). */
    support: SupportPolicySchema.optional(),
  })
  .superRefine((policy, ctx) => {
    if (Object.keys(policy.channels).length === 0) {
      ctx.addIssue({ code: 'custom', path: ['channels'], message: 'at least one channel is required' });
    }
    for (const [name, channel] of Object.entries(policy.channels)) {
      if (new Set(channel.allowedLevels).size !== channel.allowedLevels.length) {
        ctx.addIssue({ code: 'custom', path: ['channels', name, 'allowedLevels'], message: 'levels must not repeat' });
      }
      const lowest = [...channel.allowedLevels].sort((a, b) => levelRank(a) - levelRank(b))[0];
      if (lowest !== undefined && channel.idleLockSeconds > LEVEL_PROFILES[lowest].nistMaxIdleSeconds) {
        ctx.addIssue({
          code: 'custom',
          path: ['channels', name, 'idleLockSeconds'],
          message: `exceeds the NIST 800-63B inactivity limit of ${LEVEL_PROFILES[lowest].nistMaxIdleSeconds} s for level "${lowest}"`,
        });
      }
    }
    for (const [name, action] of Object.entries(policy.actions)) {
      for (const [i, channel] of (action.channels ?? []).entries()) {
        if (!Object.hasOwn(policy.channels, channel)) {
          ctx.addIssue({
            code: 'custom',
            path: ['actions', name, 'channels', i],
            message: `unknown channel "${channel}"`,
          });
        }
      }
    }
    const audiences = new Set<string>();
    for (const [i, app] of (policy.apps ?? []).entries()) {
      if (audiences.has(app.audience)) {
        ctx.addIssue({ code: 'custom', path: ['apps', i, 'audience'], message: `audience "${app.audience}" repeats` });
      }
      audiences.add(app.audience);
      for (const [j, action] of app.actions.entries()) {
        if (!Object.hasOwn(policy.actions, action)) {
          ctx.addIssue({ code: 'custom', path: ['apps', i, 'actions', j], message: `unknown action "${action}"` });
        }
      }
    }
    for (const [i, name] of (policy.breakGlass?.actions ?? []).entries()) {
      const rule = Object.hasOwn(policy.actions, name) ? policy.actions[name] : undefined;
      if (rule === undefined) {
        ctx.addIssue({ code: 'custom', path: ['breakGlass', 'actions', i], message: `unknown action "${name}"` });
      } else if (rule.level !== 'presence') {
        ctx.addIssue({
          code: 'custom',
          path: ['breakGlass', 'actions', i],
          message: `"${name}" needs "${rule.level}": a break-glass session is at "presence" at most`,
        });
      }
    }
    for (const name of Object.keys(policy.service?.actions ?? {})) {
      if (!Object.hasOwn(policy.actions, name)) {
        ctx.addIssue({ code: 'custom', path: ['service', 'actions', name], message: `unknown action "${name}"` });
      }
    }
  });

export type ChannelPolicy = z.infer<typeof ChannelPolicySchema>;
export type AppPolicy = z.infer<typeof AppPolicySchema>;
export type ServicePolicy = z.infer<typeof ServicePolicySchema>;
export type BreakGlassPolicy = z.infer<typeof BreakGlassPolicySchema>;
export type ActionPolicy = z.infer<typeof ActionPolicySchema>;
export type Policy = z.infer<typeof PolicySchema>;

/** A published policy: the document and its version (assigned by the backend, starting at 1). */
export interface PolicyVersion {
  version: number;
  policy: Policy;
  publishedAt: number;
  publishedBy: string;
}

export const KNOWN_CHANNELS = ['branch-kiosk', 'contact-centre', 'shared-console'] as const;

/** Defaults that follow NIST SP 800-63B rev 4 (see docs/standards.md). */
export const DEFAULT_POLICY: Policy = {
  channels: {
    'branch-kiosk': {
      idleLockSeconds: 120,
      maxSessionSeconds: 12 * 3600,
      continuitySeconds: 15 * 60,
      maxSessions: 4,
      offlineGraceSeconds: 15 * 60,
      allowedLevels: ['presence', 'verified', 'hardware'],
      tokenTtlSeconds: 300,
    },
    'contact-centre': {
      idleLockSeconds: 300,
      maxSessionSeconds: 12 * 3600,
      continuitySeconds: 60 * 60,
      maxSessions: 5,
      offlineGraceSeconds: 30 * 60,
      allowedLevels: ['presence', 'verified', 'hardware'],
      tokenTtlSeconds: 300,
    },
    'shared-console': {
      idleLockSeconds: 180,
      maxSessionSeconds: 12 * 3600,
      continuitySeconds: 30 * 60,
      maxSessions: 3,
      offlineGraceSeconds: 10 * 60,
      allowedLevels: ['verified', 'hardware'],
      tokenTtlSeconds: 300,
    },
  },
  credentials: {
    deviceBoundOnly: true,
    userVerification: 'preferred',
    aaguidAllowList: [],
    attestation: 'direct',
  },
  actions: {
    'customer.view': { level: 'presence', maxAgeSeconds: 12 * 3600 },
    'address.change': { level: 'verified', maxAgeSeconds: 15 * 60 },
    'payment.approve': { level: 'verified', maxAgeSeconds: 5 * 60 },
  },
  agent: {
    outboxMaxEvents: 200_000,
    heartbeatSeconds: 15,
  },
};

/** The app a token is asked for, by its audience (undefined when the policy has none such). */
export function appForAudience(policy: Policy, audience: string): AppPolicy | undefined {
  return policy.apps?.find((app) => app.audience === audience);
}

/** May a workspace page on `origin` get tokens for this app (`apps[].workspaceOrigins`)? */
export function appServesWorkspace(app: AppPolicy, origin: string): boolean {
  return app.workspaceOrigins?.includes(origin) ?? false;
}

export type PolicyValidation = { ok: true; policy: Policy } | { ok: false; issues: FieldIssue[] };

/** Turns a zod path into `channels.branch-kiosk.idleLockSeconds` or `actions.x.channels[0]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

export function toFieldIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message }));
}

export function validatePolicy(input: unknown): PolicyValidation {
  const result = PolicySchema.safeParse(input);
  if (result.success) return { ok: true, policy: result.data };
  return { ok: false, issues: toFieldIssues(result.error) };
}
