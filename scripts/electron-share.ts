import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import ts from 'typescript';

/**
 * How much of the desktop agent only Electron can run (issue 11, item 4: at most 15%).
 *
 * - **Counted files**: every `main/**\/*.ts` except tests (`*.test.ts`) and declaration files (`*.d.ts`).
 * - **Counted lines**: lines holding at least one token of code. Blank lines and lines that hold
 *   only comments (`//`, `/* *\/`, JSDoc) do not count; a statement spread over several lines
 *   (a multi-line template literal included) counts each of its lines.
 * - **Electron-bound**: every counted line of a file that only Electron can run: anything under
 *   `main/shell/` or `main/preload/`, `main/index.ts` (the Electron composition root), and any other
 *   file that imports `electron` in any form (`import`, `import type`, `export … from`,
 *   `import('electron')`, `require('electron')`). A type-only import counts too: such a file is
 *   written against Electron's objects, even if a test could stand in for them.
 * - **Share** = Electron-bound lines / counted lines.
 *
 * `node --import tsx scripts/electron-share.ts` prints the share and the Electron-bound files, and
 * exits 1 when the share is above the limit (scripts/test.sh runs it).
 */
export const ELECTRON_SHARE_LIMIT = 0.15;

/** The 1-based line numbers of `source` that hold code (not only comments or whitespace). */
export function codeLines(source: string, fileName = 'file.ts'): Set<number> {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const lines = new Set<number>();
  const visit = (node: ts.Node): void => {
    if (node.kind >= ts.SyntaxKind.FirstJSDocNode && node.kind <= ts.SyntaxKind.LastJSDocNode) return;
    const children = node.getChildren(file);
    if (children.length === 0) {
      if (node.kind === ts.SyntaxKind.EndOfFileToken) return;
      const start = file.getLineAndCharacterOfPosition(node.getStart(file)).line;
      const end = file.getLineAndCharacterOfPosition(node.getEnd()).line;
      for (let line = start; line <= end; line++) lines.add(line + 1);
      return;
    }
    children.forEach(visit);
  };
  visit(file);
  return lines;
}

/** Whether `source` imports `electron` in any form. */
export function importsElectron(source: string, fileName = 'file.ts'): boolean {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  let found = false;
  const isElectron = (node: ts.Node | undefined) =>
    node !== undefined &&
    ts.isStringLiteralLike(node) &&
    (node.text === 'electron' || node.text.startsWith('electron/'));
  const visit = (node: ts.Node): void => {
    if (found) return;
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && isElectron(node.moduleSpecifier)) {
      found = true;
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      found = isElectron(node.moduleReference.expression);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      found = isElectron(node.argument.literal);
    } else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(node.expression) && node.expression.text === 'require'))
    ) {
      found = isElectron(node.arguments[0]);
    }
    if (!found) ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

/** Whether a file (path relative to the repository, `/`-separated) only runs inside Electron. */
export function isElectronBound(path: string, source: string): boolean {
  if (path.startsWith('main/shell/') || path.startsWith('main/preload/') || path === 'main/index.ts') return true;
  return importsElectron(source, path);
}

export interface FileCount {
  path: string;
  lines: number;
  electronBound: boolean;
}

export interface ElectronShare {
  files: FileCount[];
  total: number;
  electronBound: number;
  share: number;
}

export function measure(files: readonly { path: string; source: string }[]): ElectronShare {
  const counted = files.map(({ path, source }) => ({
    path,
    lines: codeLines(source, path).size,
    electronBound: isElectronBound(path, source),
  }));
  const total = counted.reduce((sum, f) => sum + f.lines, 0);
  const electronBound = counted.filter((f) => f.electronBound).reduce((sum, f) => sum + f.lines, 0);
  return { files: counted, total, electronBound, share: total === 0 ? 0 : electronBound / total };
}

/** The counted files under `root`/main, with paths relative to `root`. */
export function agentSources(root: string): { path: string; source: string }[] {
  const out: { path: string; source: string }[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules') walk(full);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && !entry.name.endsWith('.d.ts')) {
        out.push({ path: relative(root, full).split(sep).join('/'), source: readFileSync(full, 'utf8') });
      }
    }
  };
  walk(join(root, 'main'));
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

export function report(result: ElectronShare, limit = ELECTRON_SHARE_LIMIT): string {
  const percent = (n: number) => `${(n * 100).toFixed(1)}%`;
  const bound = result.files.filter((f) => f.electronBound);
  return [
    `Electron-bound share of the agent: ${result.electronBound} of ${result.total} code lines = ${percent(result.share)} (limit ${percent(limit)})`,
    ...bound.map((f) => `  ${String(f.lines).padStart(5)}  ${f.path}`),
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  const result = measure(agentSources(join(import.meta.dirname, '..')));
  const text = report(result);
  if (result.share > ELECTRON_SHARE_LIMIT) {
    console.error(`${text}\nAbove the limit: move decisions out of main/shell into Electron-free modules.`);
    process.exit(1);
  }
  console.log(text);
}
