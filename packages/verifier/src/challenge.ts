/**
 * `WWW-Authenticate: Bearer …` values: RFC 6750 (`invalid_token`, `insufficient_scope`) and the
 * RFC 9470 step-up challenge (`insufficient_user_authentication` with `acr_values` and `max_age`).
 */
export interface ChallengeParams {
  error: 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'insufficient_user_authentication';
  description?: string | undefined;
  /** Space-separated acr values, any of which satisfies the resource (RFC 9470 §3). */
  acrValues?: string | undefined;
  /** The longest age in seconds the authentication may have (RFC 9470 §3). */
  maxAge?: number | undefined;
  realm?: string | undefined;
  scope?: string | undefined;
}

/** A quoted-string of RFC 9110: `"` and `\` escaped, control characters dropped. */
function quoted(value: string): string {
  // eslint-disable-next-line no-control-regex
  return `"${value.replace(/[\u0000-\u001f\u007f]/g, ' ').replace(/(["\\])/g, '\\$1')}"`;
}

export function bearerChallenge(params: ChallengeParams): string {
  const parts: string[] = [];
  if (params.realm !== undefined) parts.push(`realm=${quoted(params.realm)}`);
  parts.push(`error=${quoted(params.error)}`);
  if (params.description !== undefined) parts.push(`error_description=${quoted(params.description)}`);
  if (params.scope !== undefined) parts.push(`scope=${quoted(params.scope)}`);
  if (params.acrValues !== undefined) parts.push(`acr_values=${quoted(params.acrValues)}`);
  if (params.maxAge !== undefined) parts.push(`max_age=${Math.max(0, Math.floor(params.maxAge))}`);
  return `Bearer ${parts.join(', ')}`;
}

/** What a client reads back from a `WWW-Authenticate: Bearer` header (the agent uses the same parser). */
export function parseBearerChallenge(header: string): Record<string, string> | undefined {
  const match = /^\s*Bearer\s+(.*)$/is.exec(header);
  if (match?.[1] === undefined) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*(?:,|$)/g;
  for (const m of match[1].matchAll(re)) {
    const name = m[1];
    if (name === undefined) continue;
    params[name] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
  }
  return params;
}
