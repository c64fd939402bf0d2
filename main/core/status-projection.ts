import type { ChannelPolicy, SupportContact } from '../../shared/policy.js';
import type { AgentConnection, AgentNotice, AgentPhase, AgentStatus } from './agent-types.js';
import type { IdentityStatus } from './console-identity.js';
import type { OutboxStatus } from './event-outbox.js';
import type { EndedSession, SessionSnapshot } from './session-manager.js';

/** Everything the status is read from; each part owns its own piece. */
export interface StatusSources {
  identity: IdentityStatus;
  connection: AgentConnection;
  phase: AgentPhase;
  sessions: readonly SessionSnapshot[];
  outbox: OutboxStatus | undefined;
  policyVersion: number;
  notice: AgentNotice;
  channel: ChannelPolicy | undefined;
  lastEnded: EndedSession | undefined;
  idleWarning: { locksAt: number } | undefined;
  support: SupportContact | undefined;
}

/**
 * The one status the UI shows, as a pure function of the agent's parts: who is in front, whether the
 * lock screen covers the workspaces, and the channel's timings the UI explains.
 */
export function projectStatus(sources: StatusSources): AgentStatus {
  const sessions = [...sources.sessions];
  const front = sessions.find((s) => s.inFront);
  const channel = sources.channel;
  return {
    identity: sources.identity,
    connection: sources.connection,
    phase: sources.phase,
    front,
    locked: front === undefined || front.state === 'locked',
    sessions,
    outbox: sources.outbox,
    policyVersion: sources.policyVersion,
    notice: sources.notice,
    limits:
      channel === undefined
        ? undefined
        : {
            idleLockSeconds: channel.idleLockSeconds,
            continuitySeconds: channel.continuitySeconds,
            offlineGraceSeconds: channel.offlineGraceSeconds,
            ...(channel.tapAndGo === true ? { tapAndGo: true } : {}),
          },
    lastEnded: sources.lastEnded,
    // Only while someone is at work in front: a lock takes the warning away.
    idleWarning: front !== undefined && front.state !== 'locked' ? sources.idleWarning : undefined,
    support: sources.support,
  };
}
