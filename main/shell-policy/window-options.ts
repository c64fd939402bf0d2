/**
 * The options every Baton window and view is built with, as pure functions so a node:test checks
 * them without the Electron runtime. main/shell/window-factory.ts is the only place that passes them
 * to Electron (where the compiler checks they fit Electron's `WebPreferences` and
 * `BrowserWindowConstructorOptions`); nothing else creates a window or a view, or sets web preferences.
 */

/** Electron's `WebPreferences`, the fields Baton sets. */
export interface HardenedWebPreferences {
  preload: string;
  partition: string;
  sandbox: true;
  contextIsolation: true;
  nodeIntegration: false;
  nodeIntegrationInWorker: false;
  nodeIntegrationInSubFrames: false;
  webSecurity: true;
  allowRunningInsecureContent: false;
  webviewTag: false;
  experimentalFeatures: false;
  navigateOnDragDrop: false;
  spellcheck: false;
  devTools: boolean;
  safeDialogs: true;
  disableDialogs: boolean;
  backgroundThrottling: boolean;
}

/** Electron's `BrowserWindowConstructorOptions`, the fields Baton sets. */
export interface LockWindowOptions {
  title: string;
  show: boolean;
  backgroundColor: string;
  autoHideMenuBar: boolean;
  webPreferences: HardenedWebPreferences;
  width?: number;
  height?: number;
  minWidth?: number;
  minHeight?: number;
  kiosk?: boolean;
  fullscreen?: boolean;
  frame?: boolean;
  resizable?: boolean;
  movable?: boolean;
  minimizable?: boolean;
  maximizable?: boolean;
  closable?: boolean;
  alwaysOnTop?: boolean;
  skipTaskbar?: boolean;
}

/** Electron's `Input` (of `before-input-event`), the fields a shortcut is judged by. */
export interface KeyInput {
  type: string;
  key: string;
  control: boolean;
  meta: boolean;
  alt: boolean;
  shift: boolean;
}

/** The operator UI (lock screen, tap-in, switcher) or one operator's workspace app. */
export type SurfaceKind = 'operator-ui' | 'workspace';

export interface SurfaceOptions {
  /** Absolute path of the bundled (CommonJS) preload for this surface. */
  preload: string;
  /** Packaged builds never open developer tools. */
  packaged: boolean;
  /** The in-memory session partition the surface runs in (never `persist:`). */
  partition: string;
}

/**
 * The operator UI's strip above a workspace (who is in front, the switcher, lock): the renderer
 * draws it, so this height is a contract with renderer/.
 */
export const OPERATOR_BAR_HEIGHT = 56;

/** Where a workspace view sits in a window whose content area is `width` × `height`: below the operator bar. */
export function workspaceBounds([width = 0, height = 0]: readonly number[]): {
  x: number;
  y: number;
  width: number;
  height: number;
} {
  return { x: 0, y: OPERATOR_BAR_HEIGHT, width, height: Math.max(0, height - OPERATOR_BAR_HEIGHT) };
}

/** Operator-UI surfaces share one in-memory partition; each workspace gets `ws-<sessionId>`. */
export const OPERATOR_UI_PARTITION = 'baton-ui';

export function workspacePartition(sessionId: string): string {
  if (!/^[A-Za-z0-9_-]{1,100}$/.test(sessionId)) throw new Error(`Unexpected session id ${JSON.stringify(sessionId)}`);
  return `ws-${sessionId}`;
}

export function hardenedWebPreferences(kind: SurfaceKind, options: SurfaceOptions): HardenedWebPreferences {
  if (options.partition.startsWith('persist:')) {
    throw new Error(`The ${kind} partition must be in memory, not ${options.partition}`);
  }
  return {
    preload: options.preload,
    partition: options.partition,
    sandbox: true,
    contextIsolation: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    webviewTag: false,
    experimentalFeatures: false,
    navigateOnDragDrop: false,
    spellcheck: false,
    devTools: !options.packaged,
    safeDialogs: true,
    // The operator UI draws its own prompts; a workspace app may still use confirm().
    disableDialogs: kind === 'operator-ui',
    // A workspace hidden behind the lock screen or another operator keeps its timers running.
    backgroundThrottling: kind === 'operator-ui',
  };
}

export interface LockWindowConfig {
  /** Branch kiosks: full screen, no menu, no escape shortcuts. */
  kiosk: boolean;
  packaged: boolean;
  preload: string;
}

/** The one BrowserWindow: the operator UI, with the workspace views inside it. */
export function lockWindowOptions(config: LockWindowConfig): LockWindowOptions {
  const common: LockWindowOptions = {
    title: 'Baton',
    show: false,
    backgroundColor: '#10141a',
    autoHideMenuBar: true,
    webPreferences: hardenedWebPreferences('operator-ui', {
      preload: config.preload,
      packaged: config.packaged,
      partition: OPERATOR_UI_PARTITION,
    }),
  };
  if (!config.kiosk) return { ...common, width: 1280, height: 800, minWidth: 800, minHeight: 600 };
  return {
    ...common,
    kiosk: true,
    fullscreen: true,
    frame: false,
    resizable: false,
    movable: false,
    minimizable: false,
    maximizable: false,
    closable: false,
    alwaysOnTop: true,
    skipTaskbar: true,
  };
}

/** What a kiosk must not let an operator press: close, reload, leave full screen, open dev tools, print, zoom. */
export function isBlockedShortcut(input: KeyInput, kiosk: boolean): boolean {
  if (input.type !== 'keyDown' && input.type !== 'rawKeyDown') return false;
  const key = input.key.length === 1 ? input.key.toLowerCase() : input.key;
  const mod = input.control || input.meta;
  // Everywhere (kiosk or not): reloading drops a running ceremony; dev tools are a kiosk escape.
  if (key === 'F5' || key === 'F12' || key === 'BrowserRefresh') return true;
  if (mod && key === 'r') return true;
  if (mod && input.shift && (key === 'i' || key === 'j' || key === 'c')) return true;
  if (input.meta && input.alt && key === 'i') return true;
  if (!kiosk) return false;
  if (input.alt && key === 'F4') return true;
  if (key === 'F11') return true;
  if (mod && (key === 'w' || key === 'q' || key === 'n' || key === 't' || key === 'p' || key === 'o' || key === 's')) {
    return true;
  }
  if (mod && (key === '+' || key === '=' || key === '-' || key === '0')) return true;
  if (mod && input.meta && key === 'f') return true;
  if (input.meta && key === 'h') return true;
  return false;
}
