import type { AssuranceContext } from '../../shared/events.js';
import type { SessionView } from '../../shared/http-api.js';
import { LEVEL_PROFILES, type AssuranceLevel } from '../../shared/levels.js';
import type { SessionRecord } from '../store/repositories.js';

/** The assurance context events carry, derived from one authentication. */
export function assuranceContext(level: AssuranceLevel, authTime: number): AssuranceContext {
  const profile = LEVEL_PROFILES[level];
  return { level, aal: profile.aal, acr: profile.acr, amr: [...profile.amr], authTime };
}

export function sessionView(session: SessionRecord, operatorName: string): SessionView {
  const profile = LEVEL_PROFILES[session.level];
  return {
    id: session.id,
    operatorId: session.operatorId,
    operatorName,
    consoleId: session.consoleId,
    channel: session.channel,
    level: session.level,
    aal: profile.aal,
    acr: profile.acr,
    amr: [...profile.amr],
    authTime: session.authTime,
    startedAt: session.startedAt,
    expiresAt: session.expiresAt,
    state: session.state,
  };
}
