import type { AgentStatusView, CeremonyRequest, SessionSnapshotView } from '../shared/ipc.js';
import { el } from './dom.js';
import { actionLabel, duration, explainReasons, levelLabel, whenAt } from './plain-words.js';

/** The switcher: everyone signed in on this console, who is in front, and what a tap does. */
export function switcherItems(sessions: readonly SessionSnapshotView[]): HTMLLIElement[] {
  if (sessions.length === 0) return [el('li', { class: 'empty' }, 'Nobody is signed in on this console.')];
  return sessions.map((s) => {
    const state =
      s.state === 'locked'
        ? s.inFront
          ? 'in front, locked: tap your key to come back'
          : 'locked: tap your key to come back'
        : s.state === 'suspended'
          ? 'waiting: tap your key to switch back'
          : s.inFront
            ? 'in front now'
            : s.state;
    return el(
      'li',
      { 'data-front': String(s.inFront), 'data-operator': s.operatorName, 'data-state': s.state },
      el('span', { class: 'name' }, s.operatorName),
      ` — ${state}`,
    );
  });
}

export function switcherHint(status: AgentStatusView): string {
  if (status.sessions.length === 0) return 'Tap your key to sign in.';
  const front = status.front;
  const lead = front === undefined ? 'Nobody is in front.' : `${front.operatorName} is in front, locked.`;
  return `${lead} Tapping your key switches to your own work; the others wait, locked, until they tap again.`;
}

/** How the operator in front signed in, in plain words (never "AAL2"), and when the session ends. */
export function levelLine(front: SessionSnapshotView, now: number): string {
  // A break-glass session rests on nobody's key: said as what it is, never as a key tap (issue 14).
  if (front.breakGlass !== undefined) {
    const terms = front.breakGlass;
    return `Temporary access approved by ${approverWords(terms.approvedBy, terms.approverName)}, without your key · ends ${whenAt(front.expiresAt, now)}`;
  }
  return `Signed in with a ${levelLabel(front.level)} · session ends ${whenAt(front.expiresAt, now)}`;
}

/**
 * Who approved a break-glass session, in plain words: the supervisor by the name the backend sent
 * with the grant ("supervisor Sam Patel"; their operator id only if no name came), `admin:…` → "IT".
 */
export function approverWords(approvedBy: string, approverName?: string): string {
  if (!approvedBy.startsWith('operator:')) return 'IT';
  const name = approverName?.trim() ?? '';
  return `supervisor ${name === '' ? approvedBy.slice('operator:'.length) : name}`;
}

/** Under a break-glass session's level line: only what it may do, and that IT reviews it. */
export function breakGlassMark(mark: NonNullable<SessionSnapshotView['breakGlass']>, now: number): string {
  const minutes = Math.max(0, Math.round((mark.expiresAt - now) / 60_000));
  const what = mark.actions.length === 0 ? 'nothing but looking' : mark.actions.map(actionLabel).join(', ');
  return `Only: ${what}. About ${minutes} min left; IT reviews this access.`;
}

export interface CeremonyText {
  title: string;
  text: string;
  why: string[];
}

/** What the key prompt says: what the tap is for, and for a step-up the action and why. */
export function ceremonyText(status: AgentStatusView, request: CeremonyRequest | undefined): CeremonyText {
  const phase = status.phase;
  if (request?.purpose === 'step-up' || phase.kind === 'stepping-up') {
    const action = request?.action ?? (phase.kind === 'stepping-up' ? phase.action : '');
    const reasons = phase.kind === 'stepping-up' ? (phase.reasons ?? []) : [];
    const level = phase.kind === 'stepping-up' ? phase.level : undefined;
    return {
      title: `Confirm it’s you: ${actionLabel(action)}`,
      text:
        request === undefined
          ? 'Checking what this action needs…'
          : `Touch your security key${level === undefined || level === 'presence' ? '' : ' and give its PIN or fingerprint'}. Only ${status.front?.operatorName ?? 'the person signed in'} can confirm this.`,
      why: explainReasons(reasons).map((r) => `Why: ${r}.`),
    };
  }
  if (request?.purpose === 'enrol' || phase.kind === 'enrolling-operator') {
    const name = request?.operatorName;
    return {
      title: name === undefined ? 'Registering your key' : `Register your key, ${name}`,
      text:
        request === undefined
          ? 'Checking the enrolment code…'
          : 'Touch your new security key now. You may be asked to set or give its PIN.',
      why: [],
    };
  }
  if (phase.kind === 'enrolling-console') {
    return { title: 'Setting up this console', text: 'Enrolling this console with the Baton server…', why: [] };
  }
  const offline = request?.purpose === 'offline-resume' || (phase.kind === 'signing-in' && phase.offline);
  const grace = status.limits === undefined ? undefined : offlineMinutes(status.limits);
  return {
    title: 'Touch your security key now',
    text: request === undefined ? 'Getting ready…' : 'Whoever touches their key comes to the front.',
    why: offline
      ? [
          `The Baton server cannot be reached: only people already signed in here can come back${grace === undefined ? '' : `, for ${grace}`}.`,
        ]
      : [],
  };
}

/** The offline grace as the operator should read it (the continuity window caps it). */
export function offlineMinutes(limits: NonNullable<AgentStatusView['limits']>): string {
  return duration(Math.min(limits.offlineGraceSeconds, limits.continuitySeconds));
}

/** The connection banner: offline, syncing, connecting; nothing when online. */
export function bannerText(status: AgentStatusView): { kind: string; text: string } | undefined {
  if (status.identity.kind !== 'enrolled') return undefined;
  switch (status.connection) {
    case 'online':
      return undefined;
    case 'offline': {
      const grace = status.limits === undefined ? '' : `, for ${offlineMinutes(status.limits)}`;
      return {
        kind: 'offline',
        text: `The Baton server cannot be reached: only people already signed in here can come back${grace}. New sign-ins must wait.`,
      };
    }
    case 'syncing':
      return { kind: 'syncing', text: 'Catching up with the Baton server… a tap now waits a moment.' };
    case 'connecting':
      return { kind: 'connecting', text: 'Connecting to the Baton server…' };
    case 'stopped':
      return { kind: 'offline', text: 'This console is not connected to the Baton server.' };
  }
}

export const CONNECTION_WORDS: Record<AgentStatusView['connection'], string> = {
  online: 'Online',
  offline: 'Offline',
  syncing: 'Syncing',
  connecting: 'Connecting',
  stopped: 'Not connected',
};

/** Why the lock screen is up, when the one in front is locked: "Locked: nobody used it for 5 minutes." */
export function lockWhy(status: AgentStatusView): string | undefined {
  const front = status.front;
  if (front === undefined || front.state !== 'locked') return undefined;
  const who = front.operatorName;
  switch (front.lockedBecause) {
    case 'idle-timeout': {
      const idle = status.limits === undefined ? 'a while' : duration(status.limits.idleLockSeconds);
      return `Locked because nobody used it for ${idle}. ${who}, tap your key to come back.`;
    }
    case 'operator-locked':
      return `Locked: ${who} stepped away and locked it. Tap your key to come back.`;
    case 'os-lock':
      return `Locked because the computer was locked. ${who}, tap your key to come back.`;
    case 'offline-limit-reached':
      return `Locked: the console has been without the Baton server for too long. ${who} can come back once it is reachable.`;
    case undefined:
      return `${who}’s session is locked. Tap your key to come back.`;
  }
}

/** The idle warning: "Locking in 25 seconds: nobody has used this console for a while." */
export function idleWarningText(locksAt: number, now: number): string {
  const seconds = Math.max(0, Math.ceil((locksAt - now) / 1000));
  return `This console locks in ${duration(seconds)} because nobody has used it for a while. Stay signed in to keep working.`;
}

/** "Ask IT": who to ask and how, as IT configured it for this console's site. */
export function supportLines(status: AgentStatusView): { who: string; ways: string[] } {
  const s = status.support;
  if (s === undefined) {
    return { who: 'IT has not given a contact for this console’s site yet.', ways: ['Ask your branch manager.'] };
  }
  const ways: string[] = [];
  if (s.phone !== undefined) ways.push(`Phone: ${s.phone}`);
  if (s.email !== undefined) ways.push(`Email: ${s.email}`);
  if (s.hours !== undefined) ways.push(`Hours: ${s.hours}`);
  if (s.note !== undefined) ways.push(s.note);
  return { who: s.name, ways };
}
