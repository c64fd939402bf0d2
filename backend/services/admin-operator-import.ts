/**
 * Bulk import of operators from CSV (issue 12): what HR's export or a spreadsheet gives IT.
 *
 * The first line is the header: `displayName` and `roles` (required columns), `id` (optional), in any
 * order, names case-insensitive. Fields follow RFC 4180 (commas, quotes doubled inside quotes, CRLF or
 * LF). Roles within the field are separated by `;` or spaces (`teller;supervisor`).
 *
 * Every row is checked before anything is stored (name, roles, id syntax, an id used twice in the file
 * or already taken): a dry run answers the per-row errors and stores nothing; a real import with any
 * error stores nothing either (OPERATOR_IMPORT_INVALID, `issues` naming each row), so a file is
 * imported whole or not at all (bar a concurrent creation of the same id, reported as that row's error).
 */
import { BatonError, type FieldIssue } from '../../shared/errors.js';
import { CreateOperatorRequestSchema } from '../../shared/http-api.js';
import type { Store } from '../store/repositories.js';
import type { OperatorDirectory } from './operator-directory.js';

export const IMPORT_MAX_ROWS = 5000;

export interface ImportRowError {
  /** The line of the file (the header is line 1). */
  row: number;
  field: string;
  message: string;
}

export interface ImportResult {
  dryRun: boolean;
  rows: number;
  created: number;
  errors: ImportRowError[];
  operators: { row: number; id: string | null; displayName: string; roles: string[] }[];
}

/** RFC 4180 records (a quoted field may hold commas, quotes doubled, line breaks). */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let quoted = false;
  let i = 0;
  const input = text.startsWith('\uFEFF') ? text.slice(1) : text;
  while (i < input.length) {
    const c = input[i];
    if (quoted) {
      if (c === '"' && input[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') {
        quoted = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field === '') {
      quoted = true;
    } else if (c === ',') {
      record.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && input[i + 1] === '\n') i++;
      record.push(field);
      records.push(record);
      record = [];
      field = '';
    } else {
      field += c;
    }
    i++;
  }
  if (quoted)
    throw new BatonError('OPERATOR_IMPORT_INVALID', 'The CSV ends inside a quoted field (a quote is missing)');
  if (field !== '' || record.length > 0) {
    record.push(field);
    records.push(record);
  }
  return records;
}

export async function importOperators(
  deps: { store: Store; operators: OperatorDirectory },
  csv: string,
  dryRun: boolean,
  actor: string,
  /** Called before anything is stored when a row makes an admin (a person with a fresh step-up must). */
  requirePerson: () => void,
): Promise<ImportResult> {
  const records = parseCsv(csv);
  const header = (records[0] ?? []).map((h) => h.trim().toLowerCase());
  const col = (name: string) => header.indexOf(name.toLowerCase());
  const nameCol = col('displayName');
  const rolesCol = col('roles');
  const idCol = col('id');
  if (nameCol < 0 || rolesCol < 0) {
    throw new BatonError(
      'OPERATOR_IMPORT_INVALID',
      `The first line must name the columns: displayName,roles (and optionally id); got "${(records[0] ?? []).join(',').slice(0, 200)}"`,
    );
  }
  const body = records
    .slice(1)
    .map((cells, k) => ({ cells, row: k + 2 }))
    .filter(({ cells }) => cells.some((c) => c.trim() !== ''));
  if (body.length > IMPORT_MAX_ROWS) {
    throw new BatonError(
      'OPERATOR_IMPORT_INVALID',
      `At most ${IMPORT_MAX_ROWS} operators per file; this one has ${body.length}`,
    );
  }
  const errors: ImportRowError[] = [];
  const operators: ImportResult['operators'] = [];
  const idsInFile = new Map<string, number>();
  for (const { cells, row } of body) {
    if (cells.length !== header.length) {
      errors.push({ row, field: 'row', message: `has ${cells.length} fields; the header has ${header.length}` });
      continue;
    }
    const id = idCol < 0 ? '' : (cells[idCol] ?? '').trim();
    const input = {
      displayName: cells[nameCol] ?? '',
      roles: (cells[rolesCol] ?? '').split(/[;\s]+/).filter(Boolean),
      ...(id === '' ? {} : { id }),
    };
    const parsed = CreateOperatorRequestSchema.safeParse(input);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const field = String(issue.path[0] ?? 'row');
        errors.push({
          row,
          field,
          message: `${field === 'roles' ? `role "${String(input.roles[Number(issue.path[1])] ?? '')}": ` : ''}${issue.message}`,
        });
      }
      continue;
    }
    if (parsed.data.id !== undefined) {
      const earlier = idsInFile.get(parsed.data.id);
      if (earlier !== undefined) {
        errors.push({ row, field: 'id', message: `"${parsed.data.id}" is already used on line ${earlier}` });
        continue;
      }
      idsInFile.set(parsed.data.id, row);
      if ((await deps.store.operators.get(parsed.data.id)) !== undefined) {
        errors.push({ row, field: 'id', message: `an operator "${parsed.data.id}" already exists` });
        continue;
      }
    }
    operators.push({ row, id: parsed.data.id ?? null, displayName: parsed.data.displayName, roles: parsed.data.roles });
  }
  if (dryRun) return { dryRun, rows: body.length, created: 0, errors, operators };
  if (errors.length > 0) {
    const issues: FieldIssue[] = errors.map((e) => ({ path: `row ${e.row}: ${e.field}`, message: e.message }));
    throw new BatonError(
      'OPERATOR_IMPORT_INVALID',
      `${errors.length} row(s) of the CSV are in error; nothing was imported (run a dry run to see them all)`,
      { issues },
    );
  }
  if (operators.some((o) => o.roles.includes('admin'))) requirePerson();
  let created = 0;
  const made: ImportResult['operators'] = [];
  for (const o of operators) {
    try {
      const record = await deps.operators.create(
        { displayName: o.displayName, roles: o.roles, ...(o.id === null ? {} : { id: o.id }) },
        actor,
      );
      made.push({ ...o, id: record.id });
      created++;
    } catch (error) {
      errors.push({ row: o.row, field: 'row', message: error instanceof Error ? error.message : String(error) });
    }
  }
  return { dryRun, rows: body.length, created, errors, operators: made };
}
