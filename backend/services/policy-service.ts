import type { Logger } from 'pino';
import { BatonError } from '../../shared/errors.js';
import { evaluatePolicy, type Decision } from '../../shared/evaluate-policy.js';
import { DEFAULT_POLICY, validatePolicy, type Policy, type PolicyVersion } from '../../shared/policy.js';
import type { Store } from '../store/repositories.js';
import type { EventLog, UnitOfWork } from './event-log.js';

export type PolicyListener = (version: PolicyVersion) => void;

/**
 * Holds the published policy. Version 1 is the NIST-based default, published on first start. The
 * store is the truth: `policy` is this node's copy of the latest version, which `publish` (here)
 * and `refresh` (a version published on another node) move forward, never back.
 */
export class PolicyService {
  private readonly listeners = new Set<PolicyListener>();

  private constructor(
    private readonly store: Store,
    private readonly events: EventLog,
    private readonly clock: () => number,
    private readonly logger: Logger,
    private current: PolicyVersion,
  ) {}

  /**
   * Loads the latest published version, publishing the default as version 1 when there is none.
   * Nodes starting together on an empty database publish it once: the one that loses the race
   * loads the winner's.
   */
  static async open(store: Store, events: EventLog, clock: () => number, logger: Logger): Promise<PolicyService> {
    const latest = await store.policies.latest();
    if (latest !== undefined) return new PolicyService(store, events, clock, logger, latest);
    const initial: PolicyVersion = {
      version: 1,
      policy: DEFAULT_POLICY,
      publishedAt: clock(),
      publishedBy: 'system:defaults',
    };
    try {
      const published = await events.atomically(async (uow) => {
        const raced = await uow.store.policies.latest();
        if (raced !== undefined) return raced;
        await uow.store.policies.insert(initial);
        await recordChange(uow, initial, 0);
        return initial;
      });
      return new PolicyService(store, events, clock, logger, published);
    } catch (error) {
      // Another node inserted version 1 between our read and our insert: take its.
      const winner = await store.policies.latest();
      if (winner === undefined) throw error;
      return new PolicyService(store, events, clock, logger, winner);
    }
  }

  get version(): PolicyVersion {
    return this.current;
  }

  get policy(): Policy {
    return this.current.policy;
  }

  /** Called with every version this node moves to (published here or found by `refresh`), in order. */
  onPublish(listener: PolicyListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Validates and publishes a new version; refuses if another version was published since `baseVersion`. */
  async publish(input: unknown, baseVersion: number, actor: string): Promise<PolicyVersion> {
    const validation = validatePolicy(input);
    if (!validation.ok) {
      throw new BatonError(
        'POLICY_INVALID',
        `The policy document is invalid: ${validation.issues[0]?.path ?? ''} ${validation.issues[0]?.message ?? ''}`.trim(),
        {
          issues: validation.issues,
        },
      );
    }
    let published: PolicyVersion;
    try {
      published = await this.events.atomically(async (uow) => {
        const latest = await uow.store.policies.latest();
        const latestVersion = latest?.version ?? 0;
        if (baseVersion !== latestVersion) throw versionConflict(baseVersion, latestVersion);
        const next: PolicyVersion = {
          version: latestVersion + 1,
          policy: validation.policy,
          publishedAt: this.clock(),
          publishedBy: actor,
        };
        await uow.store.policies.insert(next);
        await recordChange(uow, next, latestVersion);
        // Every other node refreshes (PostgreSQL: the NOTIFY goes with this COMMIT); this one advances below.
        await uow.publish('policy', { version: next.version });
        return next;
      });
    } catch (error) {
      if (error instanceof BatonError) throw error;
      // Two nodes publishing from the same base: the store's key on the version refuses the second.
      const latest = await this.store.policies.latest().catch(() => undefined);
      if (latest !== undefined && latest.version !== baseVersion) throw versionConflict(baseVersion, latest.version);
      throw error;
    }
    this.advance(published);
    return published;
  }

  /**
   * Reloads the latest version from the store (another node may have published one) and tells the
   * listeners when it is newer than this node's copy. Never moves back: a read that started before
   * a local publish committed cannot undo it.
   */
  async refresh(): Promise<void> {
    const latest = await this.store.policies.latest();
    if (latest !== undefined) this.advance(latest);
  }

  /** Evaluates a decision against a draft (validated) or the current policy, without publishing. */
  preview(draft: unknown, context: Parameters<typeof evaluatePolicy>[1], action: string): Decision {
    let policy = this.current.policy;
    if (draft !== undefined) {
      const validation = validatePolicy(draft);
      if (!validation.ok) {
        throw new BatonError('POLICY_INVALID', 'The draft policy is invalid', { issues: validation.issues });
      }
      policy = validation.policy;
    }
    return evaluatePolicy(policy, context, action);
  }

  private advance(version: PolicyVersion): void {
    if (version.version <= this.current.version) return;
    this.current = version;
    for (const listener of this.listeners) {
      try {
        listener(version);
      } catch (error) {
        // The version is published and current; a listener's failure (a push) must not undo that.
        this.logger.error(
          { err: error, version: version.version, code: 'POLICY_LISTENER_FAILED' },
          'a policy listener failed; the version stands',
        );
      }
    }
  }
}

function versionConflict(baseVersion: number, latestVersion: number): BatonError {
  return new BatonError(
    'POLICY_VERSION_CONFLICT',
    `The edit started from version ${baseVersion} but version ${latestVersion} is current`,
  );
}

function recordChange(uow: UnitOfWork, version: PolicyVersion, previous: number): Promise<unknown> {
  return uow.record({
    type: 'policy-changed',
    subject: {},
    outcome: 'success',
    reasons: [],
    detail: { version: version.version, previousVersion: previous, actor: version.publishedBy },
  });
}
