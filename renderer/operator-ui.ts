import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/browser';
import type { AccountChoiceRequest, AgentStatusView, CeremonyRequest, IpcRequest, IpcResult } from '../shared/ipc.js';
import type { BatonApi } from './baton-api.js';
import { BreakGlassPanel, breakGlassCeremonyText, renderBreakGlassMark } from './break-glass.js';
import { cancelCeremony, runAuthentication, runRegistration } from './ceremony.js';
import { byId, el, setText, show } from './dom.js';
import {
  STANDING_NOTICES,
  actionLabel,
  explainCancelled,
  explainCode,
  explainEnded,
  explainReEnrolment,
  explainReasons,
  type CancelledHow,
} from './plain-words.js';
import {
  CONNECTION_WORDS,
  bannerText,
  ceremonyText,
  idleWarningText,
  levelLine,
  lockWhy,
  supportLines,
  switcherHint,
  switcherItems,
} from './views.js';

type Screen = 'console-enrol' | 'lock' | 'operator-enrol' | 'workspace';

/** Input restarts the agent's idle timer, at most this often. */
const ACTIVITY_THROTTLE_MS = 5_000;
/** Tap-and-go: after a refused tap, the key waits again this much later (the explanation is read first). */
const REARM_AFTER_REFUSAL_MS = 15_000;

/**
 * The operator UI: one status from the agent decides the screen; the operator's input becomes
 * calls on `window.baton`; a `ceremony:request` runs the browser half and is answered. Screens are
 * built once in index.html and shown or hidden, so typed text and focus survive status updates.
 */
export class OperatorUi {
  private status: AgentStatusView | undefined;
  private mode: 'lock' | 'operator-enrol' = 'lock';
  private screen: Screen | undefined;
  /** The screen laid out on the page: the workspace stays there, concealed, under another operator's prompt. */
  private shown: Screen | undefined;
  private concealed = false;
  /** The sessions the switcher lists were last built from: they are rebuilt only when these change. */
  private switcherKey = '';
  /** The tap this page asked for (a button, or tap-and-go), until its call answers. */
  private tapping: Promise<unknown> | undefined;
  /** Tap-and-go: the running tap is the one the lock screen started by itself (no prompt over the screen). */
  private armed = false;
  /** Tap-and-go waits: after a refusal (for a while), or while someone uses the screen for something else. */
  private armPaused = false;
  private rearmTimer: ReturnType<typeof setTimeout> | undefined;
  /** The last ceremony ended was tap-and-go's: its time-out and cancel are nobody's error. */
  private lastQuiet = false;
  private idleTick: ReturnType<typeof setInterval> | undefined;
  private supportKey = '';
  private running: CeremonyRequest | undefined;
  private overlayOpen = false;
  /** The title and focus of a new screen wait for its first frame (afterFrame). */
  private settling = false;
  private focusPending = false;
  private lastActivity = 0;
  private seenNotice = '';
  private seenEnded = '';
  /** What the notice box shows: the agent's refusal (goes when the agent clears it), or a message of its own. */
  private noticeShows: 'agent-notice' | 'message' | undefined;
  /** How the last ceremony this page ran ended without a key's answer, to say which it was (once). */
  private lastCancel: CancelledHow | undefined;
  /** The session whose workspace the action result line speaks for (a lock or another operator clears it). */
  private resultSession: string | undefined;

  constructor(private readonly api: BatonApi) {}

  async start(): Promise<void> {
    this.bind();
    this.api.onStatus((status) => this.update(status));
    this.api.onCeremonyRequest((request) => void this.runCeremony(request));
    this.api.onAccountChoice?.((request) => this.showPicker(request));
    const first = await this.api.getStatus();
    if (first.ok && this.status === undefined) this.update(first.value);
    else if (!first.ok) this.showNotice('alert', explainCode(first.error.code), first.error.code);
  }

  // ---- input ----

  private bind(): void {
    byId('tap').addEventListener('click', () => void this.tap(false));
    byId('switch').addEventListener('click', () => void this.tap(false));
    byId('ceremony-enrol').addEventListener('click', () => void this.goEnrol());
    byId('stay').addEventListener('click', () => {
      this.lastActivity = Date.now();
      void this.api.activity();
    });
    byId('ask-it').addEventListener('click', () => this.showAskIt(byId('ask-it-panel').hidden));
    byId('ask-it-close').addEventListener('click', () => this.showAskIt(false));
    byId('lock').addEventListener('click', () => void this.call(this.api.lock()));
    byId('sign-out').addEventListener('click', () => void this.call(this.api.signOut()));
    byId('go-enrol').addEventListener('click', () => void this.goEnrol());
    byId('operator-enrol-back').addEventListener('click', () => this.setMode('lock'));
    byId('notice-dismiss').addEventListener('click', () => this.hideNotice());
    byId('ceremony-cancel').addEventListener('click', () => cancelCeremony());
    byId('console-enrol-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const token = byId<HTMLInputElement>('console-token').value.trim();
      void this.call(this.api.enrolConsole(token)).then((ok) => {
        if (!ok) return;
        byId<HTMLInputElement>('console-token').value = '';
        this.hideNotice();
      });
    });
    byId('operator-enrol-form').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.enrolOperator(byId<HTMLInputElement>('operator-code').value.trim());
    });
    // Break-glass (glass, issue 14 item 7): "Forgot your key?" on the lock screen, renderer/break-glass.ts.
    new BreakGlassPanel(this.api, { hold: (on) => this.holdForBreakGlass(on) }).mount();
    for (const button of document.querySelectorAll<HTMLButtonElement>('#demo [data-action]')) {
      button.addEventListener('click', () => void this.authorize(button.dataset.action ?? ''));
    }
    const activity = () => this.noteActivity();
    for (const type of ['keydown', 'pointerdown', 'touchstart', 'wheel'] as const) {
      document.addEventListener(type, activity, { capture: true, passive: true });
    }
  }

  /** Runs a call; a refusal shows in the agent's notice (and here when the call itself failed). */
  private async call(result: Promise<IpcResult<unknown>>): Promise<boolean> {
    const answer = await result;
    if (!answer.ok && this.status?.notice?.code !== answer.error.code) this.showRefusal(answer.error.code);
    return answer.ok;
  }

  /** A tap: a button's (the prompt over the screen), or tap-and-go's (`armed`: the lock screen waits quietly). */
  private async tap(armed: boolean): Promise<void> {
    if (this.tapping !== undefined) return;
    this.armed = armed;
    const call = this.call(this.api.tapIn());
    this.tapping = call;
    const ok = await call;
    this.tapping = undefined;
    this.armed = false;
    // Tap-and-go after a refused key (a wrong PIN, an unregistered or revoked key): the teller reads why first.
    if (!ok && armed && this.lastCancel !== 'timed-out' && this.lastCancel !== 'cancelled') this.pauseArm(true);
    this.render();
  }

  /** Tap-and-go stops waiting for a key (`rearm`: and starts again after a while, by itself). */
  private pauseArm(rearm: boolean): void {
    this.armPaused = true;
    clearTimeout(this.rearmTimer);
    if (!rearm) return;
    this.rearmTimer = setTimeout(() => {
      this.armPaused = false;
      this.render();
    }, REARM_AFTER_REFUSAL_MS);
  }

  /**
   * "Register your key", from the lock screen or from another operator's prompt: whoever is in
   * front is locked first (their workspace is never shown to the newcomer), a waiting tap is
   * cancelled cleanly (nothing said), then the enrolment screen.
   */
  private async goEnrol(): Promise<void> {
    this.pauseArm(false);
    if (this.status !== undefined && !this.status.locked) await this.api.lock();
    if (this.running !== undefined) cancelCeremony();
    await this.tapping;
    this.setMode('operator-enrol');
  }

  /** Break-glass (glass): while its panel is open, tap-and-go's waiting tap is cancelled quietly and waits. */
  private async holdForBreakGlass(on: boolean): Promise<void> {
    if (!on) {
      this.armPaused = false;
      this.render();
      return;
    }
    this.pauseArm(false);
    if (this.running !== undefined && this.armed) cancelCeremony();
    await this.tapping;
  }

  private showAskIt(open: boolean): void {
    show(byId('ask-it-panel'), open);
    byId('ask-it').setAttribute('aria-expanded', String(open));
    if (open) byId('ask-it-title').focus();
  }

  /** A refusal in the notice box; a ceremony that ended without the key says how it ended, and a deliberate cancel says nothing. */
  private showRefusal(code: string): void {
    if (code === 'CEREMONY_CANCELLED' && this.lastCancel !== undefined) {
      // Tap-and-go's wait ran out or was cancelled: nobody did anything wrong.
      if (this.lastCancel === 'cancelled' || (this.lastQuiet && this.lastCancel === 'timed-out')) {
        this.hideNotice();
        return;
      }
      this.showNotice('alert', explainCancelled(this.lastCancel), code);
      return;
    }
    this.showNotice('alert', explainCode(code), code);
  }

  private async enrolOperator(code: string): Promise<void> {
    const result = await this.api.enrolOperator(code);
    if (!result.ok) {
      if (this.status?.notice?.code !== result.error.code) this.showRefusal(result.error.code);
      return;
    }
    byId<HTMLInputElement>('operator-code').value = '';
    this.setMode('lock');
    const { displayName, signedIn, signInRefused } = result.value;
    // Registering signed the newcomer in (issue 12): their workspace is in front, no second tap.
    if (signedIn) return;
    // Registered, but the console may not start a session on it (the policy): the key opens it later.
    const why = signInRefused === undefined ? '' : ` ${explainCode(signInRefused.code)}`;
    this.showNotice(
      'info',
      `Welcome, ${displayName}. Your key is registered: tap it to sign in.${why}`,
      signInRefused?.code ?? '',
    );
  }

  private async authorize(action: string): Promise<void> {
    const asked = this.resultSession;
    const out = byId('demo-result');
    setText(out, `Checking: ${actionLabel(action)}…`);
    const answer = await this.api.authorize(action);
    // Locked (or someone else in front) meanwhile: the answer is nobody's business on this screen now.
    if (asked === undefined || this.resultSession !== asked) return;
    this.showResult(out, action, answer);
  }

  private showResult(out: HTMLElement, action: string, result: Awaited<ReturnType<BatonApi['authorize']>>): void {
    if (!result.ok) {
      setText(out, this.notDone(action, result.error.code));
      return;
    }
    const r = result.value;
    if (r.outcome === 'allow') {
      setText(out, `Allowed: ${actionLabel(action)}${r.steppedUp ? ' (confirmed with your key)' : ''}.`);
    } else if (r.outcome === 'deny') {
      setText(out, `Not allowed: ${actionLabel(action)}, because ${explainReasons(r.reasons).join('; ')}.`);
    } else {
      setText(out, this.notDone(action, r.code));
    }
  }

  /** Why an action was not done; a deliberate cancel is said once, plainly, and not as an error. */
  private notDone(action: string, code: string): string {
    // A break-glass session is refused what its terms do not list (the backend's ACTION_DENIED at
    // step-up, as at the exchange): said as that, not as a console-wide ban.
    const terms = this.status?.front?.breakGlass;
    if (code === 'ACTION_DENIED' && terms !== undefined && !terms.actions.includes(action)) {
      return `Not allowed: ${actionLabel(action)}, because ${explainReasons(['break-glass-action-not-allowed']).join('; ')}.`;
    }
    if (code === 'CEREMONY_CANCELLED' && this.lastCancel === 'cancelled') {
      return `Cancelled: ${actionLabel(action)} was not done.`;
    }
    const text =
      code === 'CEREMONY_CANCELLED' && this.lastCancel !== undefined
        ? explainCancelled(this.lastCancel)
        : explainCode(code);
    return `Not done: ${text}`;
  }

  private noteActivity(): void {
    const status = this.status;
    if (status === undefined || status.locked || status.identity.kind !== 'enrolled') return;
    const now = Date.now();
    // While the idle warning is up, any input takes it away at once.
    if (now - this.lastActivity < ACTIVITY_THROTTLE_MS && status.idleWarning === undefined) return;
    this.lastActivity = now;
    void this.api.activity();
  }

  private setMode(mode: 'lock' | 'operator-enrol'): void {
    // Leaving a screen leaves its messages behind (a wrong code, then Back).
    if (mode !== this.mode) this.hideNotice();
    this.mode = mode;
    if (mode === 'lock') {
      clearTimeout(this.rearmTimer);
      this.armPaused = false;
    }
    if (mode === 'operator-enrol') show(byId('operator-enrol-done'), false);
    this.render();
  }

  // ---- ceremonies ----

  private async runCeremony(request: CeremonyRequest): Promise<void> {
    this.running = request;
    this.lastCancel = undefined;
    this.lastQuiet = this.armed;
    const started = Date.now();
    const timeout = (request.options as { timeout?: unknown }).timeout;
    const timeoutMs = typeof timeout === 'number' && timeout > 0 ? timeout : 60_000;
    this.render();
    let answer: IpcRequest<'ceremony:answer'>;
    try {
      const response =
        request.kind === 'create'
          ? await runRegistration(request.options as unknown as PublicKeyCredentialCreationOptionsJSON)
          : await runAuthentication(request.options as unknown as PublicKeyCredentialRequestOptionsJSON);
      answer = {
        requestId: request.requestId,
        outcome: 'ok',
        response: response as unknown as Record<string, unknown>,
      };
    } catch (error) {
      // The DOMException's name (NotAllowedError, AbortError, InvalidStateError) is the reason.
      const reason = error instanceof Error ? error.name : 'Error';
      // The browser does not say why a key refused (privacy): a cancel is ours, a late end is the timeout.
      this.lastCancel =
        reason === 'AbortError'
          ? 'cancelled'
          : reason === 'NotAllowedError' && Date.now() - started < timeoutMs * 0.8
            ? 'refused'
            : 'timed-out';
      answer = { requestId: request.requestId, outcome: 'cancelled', reason: reason.slice(0, 200) };
    } finally {
      if (this.running?.requestId === request.requestId) this.running = undefined;
    }
    await this.api.answerCeremony(answer);
    this.render();
  }

  /** Electron's account picker: one key, several operators; the operator picks their name. */
  private showPicker(request: AccountChoiceRequest): void {
    const choose = (credentialId: string | null) => {
      show(byId('picker'), false);
      byId('ceremony').inert = false;
      void this.api.chooseAccount?.(request.requestId, credentialId);
    };
    byId('picker-accounts').replaceChildren(
      ...request.accounts.map((account) => {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'primary';
        button.textContent = account.displayName ?? account.name ?? 'Unnamed passkey';
        button.addEventListener('click', () => choose(account.credentialId));
        return button;
      }),
    );
    byId('picker-cancel').onclick = () => choose(null);
    byId('ceremony').inert = true;
    show(byId('picker'), true);
    byId('picker-title').focus();
  }

  // ---- status ----

  private update(status: AgentStatusView): void {
    const first = this.status === undefined;
    this.status = status;
    if (first) this.forgetEarlierAttempts(status);
    // A message belongs to the screen it was given on: a new screen starts clean. Back from a prompt
    // over the concealed workspace, what the tap said (a refused key) stays: it was given after the
    // workspace's own messages went.
    const next = this.screenFor(status);
    if (this.screen !== undefined && next !== this.screen && !(this.concealed && next === 'workspace')) {
      this.hideNotice();
    }
    this.announce(status);
    this.render();
  }

  /**
   * A page (re)loaded on a shared screen shows nothing of the previous person: refusals of earlier
   * attempts and sessions that ended before it loaded count as seen; only standing faults IT must
   * hear about (the event store full or damaged, no credential store) are shown.
   */
  private forgetEarlierAttempts(status: AgentStatusView): void {
    const ended = status.lastEnded;
    if (ended !== undefined) this.seenEnded = `${ended.sessionId}:${ended.at}`;
    const notice = status.notice;
    if (notice !== undefined && !STANDING_NOTICES.has(notice.code)) this.seenNotice = `${notice.code}:${notice.at}`;
  }

  private screenFor(status: AgentStatusView): Screen {
    if (status.identity.kind !== 'enrolled') return 'console-enrol';
    // Someone else's tap: the prompt stands over the lock screen, never over the workspace in front.
    if (!status.locked && status.front !== undefined && !this.signingIn(status)) return 'workspace';
    return this.mode;
  }

  private signingIn(status: AgentStatusView): boolean {
    const purpose = this.running?.purpose;
    return status.phase.kind === 'signing-in' || purpose === 'sign-in' || purpose === 'offline-resume';
  }

  /**
   * A tap from the workspace (Switch operator): the workspace stays laid out but concealed
   * (`visibility: hidden`: nothing of it is drawn, read out or focusable) under the prompt, so the
   * end of the tap is a repaint of the verified operator's workspace rather than a new layout.
   */
  private concealWorkspace(status: AgentStatusView, screen: Screen): boolean {
    return (
      screen === 'lock' &&
      this.mode === 'lock' &&
      this.shown === 'workspace' &&
      status.identity.kind === 'enrolled' &&
      !status.locked &&
      status.front !== undefined &&
      this.signingIn(status)
    );
  }

  /** New refusals and sessions that ended are announced once (role=alert); a cleared notice goes away. */
  private announce(status: AgentStatusView): void {
    const ended = status.lastEnded;
    const endedKey = ended === undefined ? '' : `${ended.sessionId}:${ended.at}`;
    const notice = status.notice;
    const noticeKey = notice === undefined ? '' : `${notice.code}:${notice.at}`;
    const newEnded = endedKey !== '' && endedKey !== this.seenEnded;
    const newNotice = noticeKey !== '' && noticeKey !== this.seenNotice;
    this.seenEnded = endedKey;
    this.seenNotice = noticeKey;
    if (newNotice && notice !== undefined && (!newEnded || (ended?.at ?? 0) <= notice.at)) {
      this.showRefusal(notice.code);
      if (this.noticeShows === 'message') this.noticeShows = 'agent-notice';
    } else if (newEnded && ended !== undefined) {
      const mild = ended.state === 'ended' && ended.reason === 'sign-out';
      this.showNotice(mild ? 'info' : 'alert', explainEnded(ended), mild ? '' : `${ended.state}: ${ended.reason}`);
    } else if (notice === undefined && this.noticeShows === 'agent-notice') {
      // The agent cleared its refusal (a new tap began): the old explanation goes too.
      this.hideNotice();
    }
  }

  private showNotice(kind: 'alert' | 'info', text: string, code: string): void {
    this.noticeShows = 'message';
    const box = byId('notice');
    box.dataset.kind = kind;
    setText(byId('notice-text'), text);
    setText(byId('notice-detail'), code === '' ? '' : `For IT: ${code}`);
    show(box, true);
  }

  private hideNotice(): void {
    this.noticeShows = undefined;
    show(byId('notice'), false);
  }

  private render(): void {
    const status = this.status;
    if (status === undefined) return;
    show(byId('loading'), false);
    const identity = status.identity;
    setText(
      byId('console-name'),
      identity.kind === 'enrolled'
        ? `Console · ${identity.channel}`
        : identity.kind === 're-enrolment-required'
          ? 'Console must be re-enrolled'
          : 'Console not set up',
    );
    const pill = byId('connection');
    pill.dataset.state = status.connection;
    setText(pill, CONNECTION_WORDS[status.connection]);
    const banner = bannerText(status);
    const bannerBox = byId('banner');
    if (banner !== undefined) {
      bannerBox.dataset.kind = banner.kind;
      setText(bannerBox, banner.text);
    }
    show(bannerBox, banner !== undefined);

    const screen = this.screenFor(status);
    if (identity.kind === 're-enrolment-required') {
      setText(byId('console-enrol-title'), 'This console must be re-enrolled');
      setText(byId('console-enrol-why'), `${explainReEnrolment(identity)} Ask IT for a new console enrolment token.`);
    } else {
      setText(byId('console-enrol-title'), 'Set up this console');
      setText(byId('console-enrol-why'), 'IT gives each new console a one-time enrolment token. Enter it here.');
    }
    setText(byId('lock-switcher-hint'), switcherHint(status));
    const switcherKey = JSON.stringify(status.sessions.map((s) => [s.operatorName, s.state, s.inFront]));
    if (switcherKey !== this.switcherKey) {
      this.switcherKey = switcherKey;
      byId('lock-switcher').replaceChildren(...switcherItems(status.sessions));
      byId('workspace-switcher').replaceChildren(...switcherItems(status.sessions));
    }
    const front = status.front;
    const workspace = byId('workspace');
    // The action result line speaks for one session in front: a lock (the workspace leaves the screen)
    // or another operator in front leaves nothing of it behind (issue 12).
    const resultFor = screen === 'workspace' && front !== undefined ? front.id : undefined;
    if (resultFor !== this.resultSession && !this.concealWorkspace(status, screen)) {
      this.resultSession = resultFor;
      setText(byId('demo-result'), '');
    }
    if (screen === 'workspace' && front !== undefined) {
      setText(byId('workspace-title'), front.operatorName);
      setText(byId('workspace-level'), levelLine(front, Date.now()));
      // A break-glass session: what it may do, right under the level line that says what it is.
      renderBreakGlassMark(front);
      setText(byId('workspace-name'), `${front.operatorName}’s workspace`);
      workspace.dataset.operator = front.operatorName;
      workspace.dataset.session = front.id;
      show(byId('demo'), this.api.development === true);
    } else {
      delete workspace.dataset.operator;
      delete workspace.dataset.session;
    }
    const busy = status.phase.kind !== 'idle' || this.running !== undefined;
    for (const id of ['tap', 'switch']) byId<HTMLButtonElement>(id).disabled = busy;
    this.renderKiosk(status, screen);
    // Tap-and-go's own wait shows no prompt: the lock screen itself says the key is ready.
    const closed = this.renderOverlay(status, busy && !this.armed);
    // Focus moves once, after the screen is drawn (afterFrame: each move makes the browser lay the page out).
    if (!this.showScreen(screen, this.concealWorkspace(status, screen)) && closed) this.afterFrame(true);
    this.maybeArm(status);
  }

  /** Why it locked, tap-and-go's wait, the idle warning and "Ask IT" (issue 12). */
  private renderKiosk(status: AgentStatusView, screen: Screen): void {
    const why = lockWhy(status);
    setText(byId('lock-why'), why ?? '');
    show(byId('lock-why'), why !== undefined);
    // Offline, a tap is pressed for (each offline refusal is journaled: no waiting loop then).
    const tapAndGo = status.limits?.tapAndGo === true && status.connection === 'online';
    show(byId('tap'), !tapAndGo);
    setText(
      byId('tap-wait'),
      this.running === undefined ? 'Checking your key…' : 'Ready: touch your key now. There is nothing to press first.',
    );
    show(byId('tap-wait'), this.armed);
    const warning = screen === 'workspace' ? status.idleWarning : undefined;
    show(byId('idle-warning'), warning !== undefined);
    clearInterval(this.idleTick);
    this.idleTick = undefined;
    if (warning !== undefined) {
      const tick = () => setText(byId('idle-warning-text'), idleWarningText(warning.locksAt, Date.now()));
      tick();
      this.idleTick = setInterval(tick, 1000);
    }
    const support = supportLines(status);
    const key = JSON.stringify(support);
    if (key !== this.supportKey) {
      this.supportKey = key;
      setText(byId('ask-it-who'), support.who);
      byId('ask-it-ways').replaceChildren(...support.ways.map((line) => el('li', {}, line)));
    }
    const signIn = this.running?.purpose === 'sign-in';
    show(byId('ceremony-enrol'), signIn && status.connection === 'online');
  }

  /** Tap-and-go: whenever the lock screen is up and nothing else runs, the console waits for a key. */
  private maybeArm(status: AgentStatusView): void {
    if (status.limits?.tapAndGo !== true || this.armPaused || this.tapping !== undefined) return;
    if (this.shown !== 'lock' || this.mode !== 'lock' || status.identity.kind !== 'enrolled') return;
    if (status.phase.kind !== 'idle' || this.running !== undefined) return;
    if (status.connection !== 'online') return;
    void this.tap(true);
  }

  /** The key prompt; true when it has just closed (focus then goes back to the screen). */
  private renderOverlay(status: AgentStatusView, busy: boolean): boolean {
    const overlay = byId('ceremony');
    if (busy) {
      const text = breakGlassCeremonyText(this.running) ?? ceremonyText(status, this.running);
      setText(byId('ceremony-title'), text.title);
      setText(byId('ceremony-text'), text.text);
      byId('ceremony-why').replaceChildren(
        ...text.why.map((line) => {
          const item = document.createElement('li');
          item.textContent = line;
          return item;
        }),
      );
      byId<HTMLButtonElement>('ceremony-cancel').disabled = this.running === undefined;
    }
    show(overlay, busy);
    // Keyboard focus stays inside the prompt while it is open.
    byId('main').inert = busy;
    if (busy && !this.overlayOpen) byId('ceremony-title').focus();
    if (busy && this.running !== undefined && document.activeElement === byId('ceremony-title')) {
      byId('ceremony-cancel').focus();
    }
    const closed = this.overlayOpen && !busy;
    this.overlayOpen = busy;
    return closed;
  }

  /** Shows `screen`; with `conceal`, the workspace stays laid out, concealed, in its place. */
  private showScreen(screen: Screen, conceal = false): boolean {
    if (conceal !== this.concealed) {
      byId('screen-workspace').classList.toggle('concealed', conceal);
      this.concealed = conceal;
    }
    const laidOut = conceal ? 'workspace' : screen;
    if (laidOut !== this.shown) {
      for (const name of ['console-enrol', 'lock', 'operator-enrol', 'workspace'] as const) {
        show(byId(`screen-${name}`), name === laidOut);
      }
      this.shown = laidOut;
    }
    if (screen === this.screen) return false;
    this.screen = screen;
    // A welcome message has done its job once someone is at work.
    if (screen === 'workspace' && this.noticeShows === 'message' && byId('notice').dataset.kind === 'info') {
      this.hideNotice();
    }
    this.afterFrame(!this.overlayOpen);
    return true;
  }

  /**
   * What nobody sees on the new screen — the window's title and the keyboard focus (each a layout
   * and style pass of its own) — follows once the screen has been drawn, so a switch shows the
   * workspace first. `focus`: the focus moves to the screen then (if nothing took it meanwhile).
   */
  private afterFrame(focus: boolean): void {
    this.focusPending ||= focus;
    if (this.settling) return;
    this.settling = true;
    let done = false;
    const settle = () => {
      if (done) return;
      done = true;
      this.settling = false;
      this.settle();
    };
    // After the next frame is drawn; a page that draws no frames (a hidden window) settles by the timer.
    requestAnimationFrame(() => setTimeout(settle, 0));
    setTimeout(settle, 250);
  }

  private settle(): void {
    const screen = this.screen;
    if (screen === undefined) return;
    document.title = `Baton — ${byId(`screen-${screen}`).querySelector('h1')?.textContent ?? ''}`;
    const focus = this.focusPending;
    this.focusPending = false;
    // The prompt over the screen holds the focus while it is open; what the operator focused since
    // (a field of this screen, "Ask IT") keeps it; focus left on a screen or prompt that went moves.
    if (!focus || this.overlayOpen) return;
    const active = document.activeElement;
    const left =
      active === null ||
      active === document.body ||
      byId('ceremony').contains(active) ||
      (byId('main').contains(active) && !byId(`screen-${screen}`).contains(active));
    if (left) this.focusScreen(screen);
  }

  /** Puts keyboard focus where the operator's next step is. */
  private focusScreen(screen: Screen | undefined): void {
    const tapAndGo = this.status?.limits?.tapAndGo === true && this.status.connection === 'online';
    const target: Record<Screen, string> = {
      'console-enrol': 'console-token',
      lock: tapAndGo ? 'lock-title' : 'tap',
      'operator-enrol': 'operator-code',
      workspace: 'workspace-title',
    };
    if (screen !== undefined) byId(target[screen]).focus();
  }
}
