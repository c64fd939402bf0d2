import type { AgentStatusView } from '../../shared/ipc.js';

/**
 * What the shell does when the agent's status changes and when the operator UI's page reloads,
 * crashes or finishes loading. main/index.ts only forwards Electron's events here.
 */
export interface OperatorUiParts {
  /** Main → renderer events (main/shell/event-pusher.ts): held while the page is not ready. */
  pusher: { notReady(): void; markReady(): void };
  ceremonies: { cancelAll(reason: string): void };
  picker: { cancelAll(): void };
  clipboard: { apply(status: AgentStatusView): unknown };
  workspaces: { apply(status: AgentStatusView): void };
  pushStatus(status: AgentStatusView): void;
  /** The agent's status as the operator UI sees it now. */
  currentStatus(): AgentStatusView;
}

export class OperatorUiLifecycle {
  constructor(private readonly parts: OperatorUiParts) {}

  /**
   * A new status: the clipboard is cleared before another operator's workspace comes to the front
   * (never the other way round), then the operator UI hears about it.
   */
  statusChanged(): void {
    const status = this.parts.currentStatus();
    this.parts.clipboard.apply(status);
    this.parts.workspaces.apply(status);
    this.parts.pushStatus(status);
  }

  /**
   * `did-start-navigation` of the operator UI: a new document in its main frame (a reload) abandons
   * the ceremony or account choice the old page was showing, and pushes wait for the new page.
   * Sub-frames and same-document navigations change nothing. Returns whether it was a reload.
   */
  navigationStarted(details: { isMainFrame: boolean; isSameDocument: boolean }): boolean {
    if (!details.isMainFrame || details.isSameDocument) return false;
    this.abandon('The operator screen reloaded');
    return true;
  }

  /** `render-process-gone`: the same as a reload (the caller then reloads the page). */
  rendererGone(): void {
    this.abandon('The operator screen stopped');
  }

  /**
   * The page said `ui:ready` (its listeners are in place): held pushes go, then the current status
   * (the page may have missed the last one).
   */
  loaded(): void {
    this.parts.pusher.markReady();
    this.statusChanged();
  }

  private abandon(reason: string): void {
    this.parts.pusher.notReady();
    this.parts.ceremonies.cancelAll(reason);
    this.parts.picker.cancelAll();
  }
}
