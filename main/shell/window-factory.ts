import { BrowserWindow, WebContentsView, session, type WebContents } from 'electron';
import type { AccountPicker } from '../shell-policy/account-picker.js';
import type { SenderTable } from '../shell-policy/ipc-callers.js';
import { guardKioskClose } from '../shell-policy/kiosk-close.js';
import { originForLog } from '../shell-policy/navigation.js';
import {
  OPERATOR_UI_PARTITION,
  hardenedWebPreferences,
  isBlockedShortcut,
  lockWindowOptions,
  workspaceBounds,
  workspacePartition,
} from '../shell-policy/window-options.js';
import { clearWorkspacePartition, type WorkspaceHost, type WorkspaceView } from '../shell-policy/workspaces.js';
import { guardNavigation, handleAccountSelection, hardenSession } from './guards.js';

/**
 * The only place Baton creates a BrowserWindow or a WebContentsView (a lint rule and a security
 * test hold every other file to that). Every surface gets the hardened preferences of
 * main/shell-policy/window-options.ts, a hardened in-memory session, the navigation guards and the input watch that
 * blocks escape shortcuts and reports activity.
 */

export interface WindowFactoryOptions {
  kiosk: boolean;
  packaged: boolean;
  uiOrigin: string;
  workspaceAppUrl: string;
  preloads: { operatorUi: string; workspace: string };
  picker: AccountPicker;
  senders: SenderTable;
  /** Keyboard, mouse or touch input in any Baton surface (throttle it before the agent). */
  onActivity: () => void;
  /** A guard refused something: log it (never the page's content). */
  onRefused: (what: string, detail: Record<string, unknown>) => void;
  /** Baton is quitting (`before-quit` was seen): only then may a kiosk window close. */
  quitting: () => boolean;
}

export class WindowFactory {
  private readonly workspaceOrigin: string;

  constructor(private readonly options: WindowFactoryOptions) {
    this.workspaceOrigin = new URL(options.workspaceAppUrl).origin;
  }

  /** The one window: the operator UI fills it; workspace views sit inside it. */
  createLockWindow(): BrowserWindow {
    const { kiosk, packaged, preloads, uiOrigin, picker } = this.options;
    const ses = session.fromPartition(OPERATOR_UI_PARTITION);
    hardenSession(ses);
    handleAccountSelection(ses, picker, uiOrigin);
    const window = new BrowserWindow(lockWindowOptions({ kiosk, packaged, preload: preloads.operatorUi }));
    if (kiosk) {
      window.setMenu(null);
      guardKioskClose(window, this.options.quitting, () =>
        this.options.onRefused('close-refused', { surface: 'kiosk' }),
      );
    }
    this.guard(window.webContents, uiOrigin, 'operator-ui');
    this.options.senders.addOperatorUi(window.webContents.id);
    return window;
  }

  /** A hidden, empty workspace view for one session, in its own in-memory partition. */
  createWorkspaceView(sessionId: string): WebContentsView {
    const partition = workspacePartition(sessionId);
    hardenSession(session.fromPartition(partition));
    const view = new WebContentsView({
      webPreferences: hardenedWebPreferences('workspace', {
        preload: this.options.preloads.workspace,
        packaged: this.options.packaged,
        partition,
      }),
    });
    view.setVisible(false);
    this.guard(view.webContents, this.workspaceOrigin, 'workspace');
    this.options.senders.addWorkspace(view.webContents.id, sessionId);
    return view;
  }

  /** The WorkspaceHost the WorkspaceManager drives: views inside `window`, below the operator bar. */
  workspaceHost(window: BrowserWindow): WorkspaceHost {
    const live = new Set<WebContentsView>();
    const layout = (view: WebContentsView) => view.setBounds(workspaceBounds(window.getContentSize()));
    window.on('resize', () => live.forEach(layout));
    return {
      create: (sessionId): WorkspaceView => {
        const view = this.createWorkspaceView(sessionId);
        const id = view.webContents.id;
        live.add(view);
        layout(view);
        window.contentView.addChildView(view);
        view.webContents.loadURL(this.options.workspaceAppUrl).catch((error: unknown) => {
          this.options.onRefused('workspace-load-failed', { sessionId, error: String(error) });
        });
        return {
          show: () => view.setVisible(true),
          hide: () => view.setVisible(false),
          destroy: async () => {
            live.delete(view);
            this.options.senders.remove(id);
            const ses = view.webContents.session;
            if (!window.isDestroyed()) window.contentView.removeChildView(view);
            if (!view.webContents.isDestroyed()) view.webContents.close();
            await clearWorkspacePartition(ses);
          },
        };
      },
    };
  }

  private guard(contents: WebContents, origin: string, surface: 'operator-ui' | 'workspace'): void {
    const { kiosk, onActivity, onRefused } = this.options;
    guardNavigation(contents, origin, (url, how) =>
      onRefused(`${how}-refused`, { surface, origin: originForLog(url) }),
    );
    contents.on('before-input-event', (event, input) => {
      if (isBlockedShortcut(input, kiosk)) event.preventDefault();
    });
    // Every kind of input (keys, pointer, touch, wheel) counts as the operator being there.
    contents.on('input-event', () => onActivity());
    const id = contents.id;
    contents.on('destroyed', () => this.options.senders.remove(id));
  }
}
