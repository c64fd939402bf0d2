import { BatonError } from '../../shared/errors.js';
import { evaluatePolicy, type Decision } from '../../shared/evaluate-policy.js';
import { DEFAULT_POLICY, validatePolicy, type Policy, type PolicyVersion } from '../../shared/policy.js';
import type { Store } from '../store/repositories.js';
import type { EventLog } from './event-log.js';

export type PolicyListener = (version: PolicyVersion) => void;

/** Holds the published policy. Version 1 is the NIST-based default, published on first start. */
export class PolicyService {
  private current: PolicyVersion;
  private readonly listeners = new Set<PolicyListener>();

  constructor(
    private readonly store: Store,
    private readonly events: EventLog,
    private readonly clock: () => number,
  ) {
    const latest = store.policies.latest();
    if (latest !== undefined) {
      this.current = latest;
    } else {
      this.current = { version: 1, policy: DEFAULT_POLICY, publishedAt: clock(), publishedBy: 'system:defaults' };
      events.atomically(() => {
        store.policies.insert(this.current);
        this.recordChange(this.current, 0);
      });
    }
  }

  get version(): PolicyVersion {
    return this.current;
  }

  get policy(): Policy {
    return this.current.policy;
  }

  onPublish(listener: PolicyListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Validates and publishes a new version; refuses if another version was published since `baseVersion`. */
  publish(input: unknown, baseVersion: number, actor: string): PolicyVersion {
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
    const published = this.events.atomically(() => {
      const latest = this.store.policies.latest();
      const latestVersion = latest?.version ?? 0;
      if (baseVersion !== latestVersion) {
        throw new BatonError(
          'POLICY_VERSION_CONFLICT',
          `The edit started from version ${baseVersion} but version ${latestVersion} is current`,
        );
      }
      const next: PolicyVersion = {
        version: latestVersion + 1,
        policy: validation.policy,
        publishedAt: this.clock(),
        publishedBy: actor,
      };
      this.store.policies.insert(next);
      this.recordChange(next, latestVersion);
      return next;
    });
    this.current = published;
    for (const listener of this.listeners) listener(published);
    return published;
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

  private recordChange(version: PolicyVersion, previous: number): void {
    this.events.record({
      type: 'policy-changed',
      subject: {},
      outcome: 'success',
      reasons: [],
      detail: { version: version.version, previousVersion: previous, actor: version.publishedBy },
    });
  }
}
