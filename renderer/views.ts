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
  return `Signed in with a ${levelLabel(front.level)} · session ends ${whenAt(front.expiresAt, now)}`;
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
