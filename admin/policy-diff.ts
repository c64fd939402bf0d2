/**
 * What a policy draft changes against the published version: every changed setting (for the diff
 * table) and, in plain words, what changes for whom (for the publish confirmation).
 */

type Json = unknown;

export interface SettingChange {
  /** `channels.branch-kiosk.idleLockSeconds`, `actions.payment.approve` (a whole action added or removed). */
  path: string;
  before: Json;
  after: Json;
}

const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Leaf by leaf (arrays compared whole); a key only on one side is one change. */
export function settingChanges(before: Json, after: Json, path = ''): SettingChange[] {
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    return keys.flatMap((key) => settingChanges(before[key], after[key], path === '' ? key : `${path}.${key}`));
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [{ path, before, after }];
}

/** 300 → "5 min", 43200 → "12 h", 90 → "90 s". */
export function duration(seconds: number): string {
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** What each channel setting is called on screen. */
export const CHANNEL_FIELDS: Record<string, { label: string; seconds: boolean }> = {
  idleLockSeconds: { label: 'Idle lock after (s)', seconds: true },
  maxSessionSeconds: { label: 'Longest session (s)', seconds: true },
  continuitySeconds: { label: 'Resume a locked session within (s)', seconds: true },
  maxSessions: { label: 'Sessions held at once', seconds: false },
  offlineGraceSeconds: { label: 'Resume offline within (s)', seconds: true },
  tokenTtlSeconds: { label: 'Assurance token lifetime (s)', seconds: true },
  maxOfflineSeconds: { label: 'Longest time without the backend (s)', seconds: true },
};

function show(value: Json, seconds: boolean): string {
  if (value === undefined) return 'the default';
  if (typeof value === 'number' && seconds) return duration(value);
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.map((v) => `'${String(v)}'`).join(', ');
  return typeof value === 'string' ? `'${value}'` : JSON.stringify(value);
}

interface ActionRule {
  level?: Json;
  maxAgeSeconds?: Json;
  channels?: Json;
}

function actionRule(rule: Json): ActionRule | undefined {
  return isObject(rule) ? rule : undefined;
}

function requirement(rule: ActionRule): string {
  const age = typeof rule.maxAgeSeconds === 'number' ? duration(rule.maxAgeSeconds) : String(rule.maxAgeSeconds);
  return `'${String(rule.level)}' within ${age}`;
}

/** The channels an action applies on: its list, or every channel of the policy. */
function channelsOf(rule: ActionRule | undefined, all: string[]): string[] {
  return Array.isArray(rule?.channels) ? rule.channels.map(String) : all;
}

/**
 * One sentence per channel that a change reaches, naming the channel and, when known, how many
 * consoles run it: "contact-centre (3 consoles): step-up for payment.approve now requires 'verified'
 * within 5 min (was 'presence' within 12 h)".
 */
export function whatChangesForWhom(before: Json, after: Json, consolesOn: (channel: string) => number): string[] {
  const b = isObject(before) ? before : {};
  const a = isObject(after) ? after : {};
  const bChannels = isObject(b.channels) ? b.channels : {};
  const aChannels = isObject(a.channels) ? a.channels : {};
  const bActions = isObject(b.actions) ? b.actions : {};
  const aActions = isObject(a.actions) ? a.actions : {};
  const allChannels = [...new Set([...Object.keys(bChannels), ...Object.keys(aChannels)])];
  const who = (channel: string) => {
    const n = consolesOn(channel);
    return `${channel} (${n} ${n === 1 ? 'console' : 'consoles'})`;
  };
  const lines: string[] = [];

  for (const channel of allChannels) {
    const was = bChannels[channel];
    const now = aChannels[channel];
    if (was === undefined) {
      lines.push(`${who(channel)}: new channel; consoles enrolled on it can sign people in.`);
      continue;
    }
    if (now === undefined) {
      lines.push(`${who(channel)}: channel removed; its consoles can no longer sign anyone in.`);
      continue;
    }
    const parts = settingChanges(was, now).map(({ path, before: x, after: y }) => {
      if (path === 'allowedLevels') return `sign-in now allowed at ${show(y, false)} (was ${show(x, false)})`;
      if (path === 'staleNode') return `when a backend node may be stale: ${show(y, false)} (was ${show(x, false)})`;
      const field = CHANNEL_FIELDS[path];
      const label = (field?.label ?? path).replace(/ \(s\)$/, '').toLowerCase();
      return `${label} ${show(y, field?.seconds ?? false)} (was ${show(x, field?.seconds ?? false)})`;
    });
    if (parts.length > 0) lines.push(`${who(channel)}: ${parts.join('; ')}`);
  }

  const actionNames = [...new Set([...Object.keys(bActions), ...Object.keys(aActions)])];
  for (const action of actionNames) {
    const was = actionRule(bActions[action]);
    const now = actionRule(aActions[action]);
    if (JSON.stringify(was) === JSON.stringify(now)) continue;
    const reach = [
      ...new Set([...channelsOf(was, Object.keys(bChannels)), ...channelsOf(now, Object.keys(aChannels))]),
    ];
    for (const channel of reach) {
      const wasHere = was !== undefined && channelsOf(was, Object.keys(bChannels)).includes(channel);
      const nowHere = now !== undefined && channelsOf(now, Object.keys(aChannels)).includes(channel);
      if (!nowHere && wasHere) lines.push(`${who(channel)}: ${action} is now refused (no rule for it here).`);
      else if (nowHere && !wasHere)
        lines.push(`${who(channel)}: ${action} is now allowed with step-up to ${requirement(now)}.`);
      else if (nowHere && wasHere && requirement(now) !== requirement(was)) {
        lines.push(`${who(channel)}: step-up for ${action} now requires ${requirement(now)} (was ${requirement(was)})`);
      }
    }
  }

  for (const section of ['credentials', 'agent']) {
    for (const change of settingChanges(b[section], a[section])) {
      lines.push(
        `every console: ${section}.${change.path} ${show(change.after, false)} (was ${show(change.before, false)})`,
      );
    }
  }
  return lines;
}
