import { ApiError, api, endpoint } from './api.js';
import { announce, errorBox, h, replace, table } from './dom.js';

interface ImportAnswer {
  dryRun: boolean;
  rows: number;
  created: number;
  errors: { row: number; field: string; message: string }[];
}

/**
 * Operators from a CSV file (HR's export, a spreadsheet): a dry run first lists every row in error,
 * line by line; the import stores the whole file or nothing.
 */
export function operatorImportCard(onImported: () => void): HTMLElement {
  const file = h('input', { id: 'import-file', type: 'file', accept: '.csv,text/csv' });
  const text = h('textarea', {
    id: 'import-csv',
    rows: 6,
    spellcheck: false,
    placeholder: 'displayName,roles,id\nAda Teller,teller,\n"Okafor, Chidi",teller;supervisor,',
  });
  const result = h('div', { id: 'import-result', 'aria-live': 'polite' });
  const dry = h('button', { type: 'button', id: 'import-dry-run' }, 'Check (dry run)');
  const go = h('button', { type: 'button', class: 'primary', id: 'import-run' }, 'Import');
  file.addEventListener('change', () => {
    const chosen = file.files?.[0];
    if (chosen !== undefined) void chosen.text().then((content) => (text.value = content));
  });
  const run = async (dryRun: boolean) => {
    try {
      const answer = await api<ImportAnswer>(...endpoint('adminOperatorsImport'), { csv: text.value, dryRun });
      const errors =
        answer.errors.length === 0
          ? null
          : table(
              'Rows in error',
              ['line', 'field', 'problem'],
              answer.errors.map((e) => [e.row, e.field, e.message]),
              '',
            );
      if (dryRun) {
        replace(
          result,
          h(
            'p',
            { class: answer.errors.length === 0 ? 'ok' : 'error', role: 'status' },
            answer.errors.length === 0
              ? `All ${answer.rows} rows are fine: nothing was stored yet. Press Import to create them.`
              : `${new Set(answer.errors.map((e) => e.row)).size} of ${answer.rows} rows are in error; nothing was stored. Fix them and check again.`,
          ),
          errors,
        );
      } else {
        replace(result, h('p', { class: 'ok', role: 'status' }, `Imported ${answer.created} operators.`), errors);
        announce(`Imported ${answer.created} operators`);
        onImported();
      }
    } catch (error) {
      if (error instanceof ApiError && error.code === 'OPERATOR_IMPORT_INVALID' && error.issues.length > 0) {
        replace(
          result,
          h('p', { class: 'error', role: 'alert' }, `${error.message}.`),
          table(
            'Rows in error',
            ['row', 'problem'],
            error.issues.map((i) => [i.path, i.message]),
            '',
          ),
        );
        return;
      }
      replace(result, errorBox(error));
    }
  };
  dry.addEventListener('click', () => void run(true));
  go.addEventListener('click', () => void run(false));
  return h(
    'section',
    { class: 'card', id: 'operator-import' },
    h('h2', {}, 'Import operators from CSV'),
    h(
      'p',
      { class: 'muted' },
      'First line: displayName,roles (and id if you set them). Roles in a cell are separated by ";". Check with a dry run first: the file is imported whole or not at all.',
    ),
    h('label', { for: 'import-file' }, 'CSV file', file),
    h('label', { for: 'import-csv' }, 'or paste it here', text),
    h('div', { class: 'row' }, dry, go),
    result,
  );
}
