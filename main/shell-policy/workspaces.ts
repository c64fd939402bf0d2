import type { AgentStatusView } from '../../shared/ipc.js';

/**
 * Per-operator workspaces. Each live session has a view of the workspace app in its own in-memory
 * partition; the one in front is shown, every other one is hidden without reloading; a session that
 * ends (signed out, expired, revoked, evicted) has its view destroyed and its partition cleared.
 * The operator UI underneath covers everything while the console is locked or a ceremony (tap-in,
 * step-up, enrolment, account choice) is on screen. Electron-free: the views come from a host.
 */

/** One workspace view as the manager needs it (window-factory.ts builds the real one). */
export interface WorkspaceView {
  show(): void;
  hide(): void;
  /** Removes the view, closes its WebContents and clears its partition (storage and cache). */
  destroy(): Promise<void>;
}

/** The part of an Electron Session a workspace's partition is cleared through. */
export interface PartitionSession {
  clearStorageData(): Promise<void>;
  clearCache(): Promise<void>;
  clearAuthCache(): Promise<void>;
  closeAllConnections(): Promise<void>;
}

/**
 * Clears everything a workspace's partition may hold of its operator when the session ends:
 * storage (cookies, local storage, IndexedDB, service workers…), the HTTP cache, the HTTP
 * authentication cache (Basic/NTLM/Negotiate credentials the next operator's requests would reuse)
 * and open connections (a keep-alive socket authenticated as the operator). Each step runs even if
 * an earlier one failed; the first failure is then reported.
 */
export async function clearWorkspacePartition(ses: PartitionSession): Promise<void> {
  const results = await Promise.allSettled([
    ses.clearStorageData(),
    ses.clearCache(),
    ses.clearAuthCache(),
    ses.closeAllConnections(),
  ]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

export interface WorkspaceHost {
  create(sessionId: string): WorkspaceView;
}

type StatusLike = Pick<AgentStatusView, 'sessions' | 'locked' | 'phase'> & {
  front?: Pick<NonNullable<AgentStatusView['front']>, 'id'> | undefined;
};

const LIVE_STATES: ReadonlySet<string> = new Set(['active', 'stepped-up', 'locked', 'suspended']);

/** Which session's workspace is on screen, if any: the front one, unlocked, with no ceremony running. */
export function visibleWorkspace(status: StatusLike): string | undefined {
  if (status.locked || status.phase.kind !== 'idle' || status.front === undefined) return undefined;
  const front = status.sessions.find((s) => s.id === status.front?.id);
  return front !== undefined && LIVE_STATES.has(front.state) ? front.id : undefined;
}

export class WorkspaceManager {
  private readonly views = new Map<string, WorkspaceView>();
  private shown: string | undefined;

  constructor(
    private readonly host: WorkspaceHost,
    private readonly onError: (sessionId: string, error: unknown) => void = () => undefined,
  ) {}

  /** The session ids that have a view, for tests and the IPC sender registry. */
  get sessions(): string[] {
    return [...this.views.keys()];
  }

  get visible(): string | undefined {
    return this.shown;
  }

  /** Brings the views in line with the agent's status; idempotent, so every status change can call it. */
  apply(status: StatusLike): void {
    const live = new Set(status.sessions.filter((s) => LIVE_STATES.has(s.state)).map((s) => s.id));
    for (const [sessionId, view] of this.views) {
      if (live.has(sessionId)) continue;
      this.views.delete(sessionId);
      if (this.shown === sessionId) this.shown = undefined;
      view.destroy().catch((error: unknown) => this.onError(sessionId, error));
    }
    for (const sessionId of live) {
      if (!this.views.has(sessionId)) this.views.set(sessionId, this.host.create(sessionId));
    }
    const next = visibleWorkspace(status);
    // Hide first, then show: two operators' workspaces are never on screen together.
    for (const [sessionId, view] of this.views) if (sessionId !== next) view.hide();
    if (next !== undefined) this.views.get(next)?.show();
    this.shown = next;
  }

  /** Quitting: every workspace goes, with its partition. */
  async destroyAll(): Promise<void> {
    const views = [...this.views.entries()];
    this.views.clear();
    this.shown = undefined;
    await Promise.all(views.map(([id, view]) => view.destroy().catch((error: unknown) => this.onError(id, error))));
  }
}
