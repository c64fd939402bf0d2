/**
 * Where a single revocation's time goes on PostgreSQL, from the server's own statement log
 * (`log_statement=all`, `log_line_prefix` STATEMENT_LOG_PREFIX: millisecond wall-clock timestamps
 * and the backend's pid). For each revoke call (its start on this machine's wall clock) it finds
 * the first statement of the request (the admin token's check), then that connection's `begin` and
 * `commit` (a unit's NOTIFY goes in the same round trip, before it), and counts the statements
 * between them. PostgreSQL stamps a statement when it starts, to the millisecond, so the figures
 * are medians of whole milliseconds, not a per-sample timing.
 */
import { readFileSync } from 'node:fs';

/** The PostgreSQL settings that make the log this module reads. */
export const STATEMENT_LOG_SETTINGS = { log_statement: 'all', log_line_prefix: '%m=%p=' } as const;

interface Statement {
  at: number;
  pid: string;
  text: string;
}

export interface RevokeTimeline {
  /** ms from the call to the request's first statement (routing and the admin token's check). */
  firstStatement: number;
  begin: number;
  commit: number;
  /** Statements from `begin` to `commit`, both counted. */
  statementsInUnit: number;
}

function parse(file: string): Statement[] {
  const statements: Statement[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC=(\d+)=LOG: {2}(.*)$/.exec(line);
    if (match === null) continue;
    const [, stamp, pid, text] = match as unknown as [string, string, string, string];
    statements.push({ at: Date.parse(`${stamp.replace(' ', 'T')}Z`), pid, text });
  }
  return statements;
}

/** One timeline per call start (ms since the epoch) that the log covers; calls it cannot place are left out. */
export function revokeTimelines(logFile: string, callStarts: readonly number[]): RevokeTimeline[] {
  const statements = parse(logFile);
  const timelines: RevokeTimeline[] = [];
  for (const t0 of callStarts) {
    // The log's stamps are truncated to the millisecond: a statement in the call's own millisecond counts.
    const first = statements.findIndex((s) => s.at >= Math.floor(t0) && s.text.includes('"admin_tokens"'));
    if (first < 0) continue;
    const { pid } = statements[first] as Statement;
    const rest = statements.slice(first).filter((s) => s.pid === pid);
    const b = rest.findIndex((s) => s.text === 'statement: begin');
    // A unit that published on the cluster bus sends its NOTIFY in the COMMIT's round trip (`…; commit`).
    const c = rest.findIndex((s) => /^statement: (?:.*; )?commit$/.test(s.text));
    const begin = rest[b];
    const commit = rest[c];
    if (begin === undefined || commit === undefined || c < b) continue;
    timelines.push({
      firstStatement: (statements[first] as Statement).at - t0,
      begin: begin.at - t0,
      commit: commit.at - t0,
      statementsInUnit: c - b + 1,
    });
  }
  return timelines;
}
