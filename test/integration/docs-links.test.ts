import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { describe, test } from 'node:test';

/**
 * The documentation stands on its own: every relative link in README.md, SECURITY.md and docs/
 * reaches a file (and a heading, when it names one) in this repository, and nothing in the
 * repository cites the design notes that used to live beside it instead of docs/.
 */
const ROOT = join(import.meta.dirname, '..', '..');

/** Build output, dependencies and data: not the repository's own text. */
const SKIPPED_DIRS = new Set([
  '.git',
  'node_modules',
  '.tmp',
  'dist',
  'data',
  'test-results',
  'playwright-report',
  'artifacts',
]);
const TEXT_FILE = /\.(?:ts|js|mjs|cjs|json|md|ya?ml|sh|html|css|txt)$/;

function walk(dir: string, keep: (file: string) => boolean): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRS.has(entry.name)) found.push(...walk(path, keep));
    } else if (entry.isFile() && keep(path)) {
      found.push(path);
    }
  }
  return found;
}

const rel = (file: string): string => relative(ROOT, file).split(sep).join('/');

/** The lines of a markdown file that are prose: fenced code blocks are left out. */
function proseLines(text: string): { line: string; number: number }[] {
  const lines: { line: string; number: number }[] = [];
  let fence: string | undefined;
  text.split('\n').forEach((line, index) => {
    const opening = /^\s*(`{3,}|~{3,})/.exec(line);
    if (opening !== null) {
      const marker = opening[1] ?? '';
      if (fence === undefined) fence = marker[0]?.repeat(marker.length);
      else if (marker.startsWith(fence)) fence = undefined;
      return;
    }
    if (fence === undefined) lines.push({ line, number: index + 1 });
  });
  return lines;
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { line } of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading === null) continue;
    const text = (heading[1] ?? '')
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/<[^>]+>/g, '')
      .toLowerCase();
    const base = text
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .trim()
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

interface Link {
  file: string;
  line: number;
  target: string;
}

/** Inline links `[text](target)` and reference definitions `[id]: target`, outside code. */
function links(file: string): Link[] {
  const found: Link[] = [];
  for (const { line, number } of proseLines(readFileSync(file, 'utf8'))) {
    const prose = line.replace(/`[^`]*`/g, '``');
    for (const match of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+["'][^)]*)?\)/g)) {
      found.push({ file, line: number, target: match[1] ?? '' });
    }
    const definition = /^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/.exec(prose);
    if (definition !== null) found.push({ file, line: number, target: definition[1] ?? '' });
  }
  return found;
}

function documentationFiles(): string[] {
  const docs = walk(join(ROOT, 'docs'), (file) => file.endsWith('.md'));
  return [join(ROOT, 'README.md'), join(ROOT, 'SECURITY.md'), ...docs].filter((file) => existsSync(file));
}

/** Where a link goes wrong, or undefined when it resolves. */
function brokenLink(link: Link, anchorsOf: (file: string) => Set<string>): string | undefined {
  const { target } = link;
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined; // https:, mailto:, …: not a file here
  const hash = target.indexOf('#');
  const pathPart = decodeURIComponent(hash === -1 ? target : target.slice(0, hash));
  const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));
  if (pathPart.startsWith('/')) return 'an absolute path (use a path relative to the file)';
  const destination = pathPart === '' ? link.file : resolve(dirname(link.file), pathPart);
  if (!destination.startsWith(ROOT + sep)) return 'it leaves the repository';
  if (!existsSync(destination)) return `${rel(destination)} does not exist`;
  if (anchor === undefined || anchor === '') return undefined;
  if (!statSync(destination).isFile() || !destination.endsWith('.md')) return undefined;
  return anchorsOf(destination).has(anchor) ? undefined : `${rel(destination)} has no heading #${anchor}`;
}

/**
 * Paths from the repository's root named in inline code (`main/core/clock.ts`): a top-level folder
 * of this repository, then a file with an extension. Globs and placeholders are not paths.
 */
function repositoryPaths(line: string): string[] {
  const roots = 'shared|backend|main|renderer|admin|test|bench|build|scripts|docs|\\.github';
  const pattern = new RegExp(`\`((?:${roots})/[\\w./-]*\\.[a-z]{1,5})\``, 'g');
  return [...line.matchAll(pattern)].map((m) => m[1] ?? '').filter((path) => !/[*<>]/.test(path));
}

describe('documentation links', () => {
  test('the anchor rule matches GitHub on the headings the docs use', () => {
    const anchors = headingAnchors(
      [
        '# The agent (`main/`, `renderer/`)',
        '### `POST /v1/sessions/:id/token`',
        "## The agent's machine-wide configuration",
        '## Offline',
        '## Offline',
        '```sh',
        '# not a heading',
        '```',
      ].join('\n'),
    );
    assert.deepEqual(
      [...anchors].sort(),
      [
        'offline',
        'offline-1',
        'post-v1sessionsidtoken',
        'the-agent-main-renderer',
        'the-agents-machine-wide-configuration',
      ].sort(),
    );
  });

  test('every relative link in README.md, SECURITY.md and docs/ reaches a file and heading in the repository', () => {
    const files = documentationFiles();
    assert.ok(files.length > 5, `found only ${files.length} documentation files`);
    const cache = new Map<string, Set<string>>();
    const anchorsOf = (file: string): Set<string> => {
      let anchors = cache.get(file);
      if (anchors === undefined) {
        anchors = headingAnchors(readFileSync(file, 'utf8'));
        cache.set(file, anchors);
      }
      return anchors;
    };
    const all = files.flatMap(links);
    assert.ok(all.length > 20, `found only ${all.length} links`);
    const broken = all.flatMap((link) => {
      const why = brokenLink(link, anchorsOf);
      return why === undefined ? [] : [`${rel(link.file)}:${link.line} → ${link.target}: ${why}`];
    });
    assert.deepEqual(broken, []);
  });

  test('every file of the repository a document names in backticks exists', () => {
    const missing = documentationFiles().flatMap((file) =>
      proseLines(readFileSync(file, 'utf8')).flatMap(({ line, number }) =>
        repositoryPaths(line)
          .filter((path) => !existsSync(join(ROOT, path)))
          .map((path) => `${rel(file)}:${number}: ${path}`),
      ),
    );
    assert.deepEqual(missing, [], 'a file was moved or renamed: update the documents that name it');
  });

  test('a broken file link, a missing heading and a path out of the repository are each caught', () => {
    const file = join(ROOT, 'docs', 'architecture.md');
    const anchorsOf = (target: string): Set<string> => headingAnchors(readFileSync(target, 'utf8'));
    assert.match(brokenLink({ file, line: 1, target: 'no-such-file.md' }, anchorsOf) ?? '', /does not exist/);
    assert.match(brokenLink({ file, line: 1, target: 'agent.md#no-such-heading' }, anchorsOf) ?? '', /no heading/);
    assert.match(brokenLink({ file, line: 1, target: '../../shared/x.md' }, anchorsOf) ?? '', /leaves the repository/);
    assert.equal(brokenLink({ file, line: 1, target: 'https://example.com/x' }, anchorsOf), undefined);
    assert.deepEqual(repositoryPaths('see `main/core/clock.ts`, `shared/*.ts` and `docs/adr/`'), [
      'main/core/clock.ts',
    ]);
  });
});

/**
 * The design notes this project started from were kept outside the repository. Their content now
 * lives in docs/ (architecture.md, trust-model.md, standards.md, agent-states.md, development.md);
 * only development.md says where it came from.
 */
const OUTSIDE_NOTES = /\b(?:DESIGN|STANDARDS|STYLE|ENVIRONMENT)\.md\b/;
const MAY_NAME_THE_NOTES = new Set(['docs/development.md', 'test/integration/docs-links.test.ts']);

/** A relative path to a `shared/` that is not this repository's (e.g. `../shared/DESIGN.md` from the root). */
function outsideSharedPaths(file: string, text: string): string[] {
  const found: string[] = [];
  const machinePath = '/work' + '/shared';
  if (text.includes(machinePath)) found.push(machinePath);
  for (const match of text.matchAll(/(?:\.\.\/)+shared\/[\w./-]*/g)) {
    const destination = resolve(dirname(file), match[0]);
    if (!destination.startsWith(ROOT + sep)) found.push(match[0]);
  }
  return found;
}

describe('no reference to design notes outside the repository', () => {
  // Text files, and scripts without an extension (.ci/run).
  const files = walk(
    ROOT,
    (file) => (TEXT_FILE.test(file) || !basename(file).includes('.')) && !file.endsWith('package-lock.json'),
  );

  test('no file names the old design notes (DESIGN, STANDARDS, STYLE, ENVIRONMENT) except where docs explain them', () => {
    assert.ok(files.length > 100, `found only ${files.length} files`);
    const offenders = files.flatMap((file) => {
      if (MAY_NAME_THE_NOTES.has(rel(file))) return [];
      return readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, index) => (OUTSIDE_NOTES.test(line) ? [`${rel(file)}:${index + 1}: ${line.trim()}`] : []));
    });
    assert.deepEqual(offenders, [], 'point these at docs/ (architecture.md, trust-model.md, standards.md, …)');
  });

  test('no file reaches for a shared/ folder outside the repository', () => {
    const offenders = files.flatMap((file) =>
      outsideSharedPaths(file, readFileSync(file, 'utf8')).map((path) => `${rel(file)}: ${path}`),
    );
    assert.deepEqual(offenders, []);
  });

  test('the checks catch a dangling reference', () => {
    assert.ok(OUTSIDE_NOTES.test('Imports flow one way (see ' + 'DESIGN.md).'));
    assert.deepEqual(outsideSharedPaths(join(ROOT, 'docs', 'x.md'), 'see ../../shared/anchors/pg.mjs'), [
      '../../shared/anchors/pg.mjs',
    ]);
    assert.deepEqual(outsideSharedPaths(join(ROOT, 'admin', 'x.ts'), "import '../shared/errors.js'"), []);
  });
});

/** The states each diagram of docs/agent-states.md declares (`state "name" as id`), by its `%% states:` tag. */
function diagramStates(markdown: string): Map<string, string[]> {
  const diagrams = new Map<string, string[]>();
  for (const block of markdown.matchAll(/```mermaid\n([\s\S]*?)```/g)) {
    const body = block[1] ?? '';
    const tag = /%%\s*states:\s*(\S+)/.exec(body)?.[1];
    if (tag === undefined) continue;
    diagrams.set(
      tag,
      [...body.matchAll(/^\s*state\s+"([^"]+)"\s+as\s+\w+/gm)].map((m) => m[1] ?? ''),
    );
  }
  return diagrams;
}

/** Repository paths a comment or a lint message names (`see main/core/clock.ts`), backticks or not. */
function pathsInComment(line: string): string[] {
  const trimmed = line.trim();
  const isComment = /^(?:\/\/|\/\*|\*)/.test(trimmed) || /\bmessage:/.test(trimmed);
  if (!isComment) return [];
  const roots = 'shared|backend|main|renderer|admin|test|bench|build|scripts|docs';
  const pattern = new RegExp(`(?<![\\w./-])((?:${roots})/[\\w./-]*\\.(?:ts|md|json|js|sh|yml))(?![\\w/])`, 'g');
  return [...trimmed.matchAll(pattern)].map((m) => m[1] ?? '');
}

describe('comments and lint messages name files that exist', () => {
  test('every repository path in a source comment or an eslint.config.js message exists', () => {
    const sources = ['shared', 'backend', 'main', 'renderer', 'admin', 'scripts', 'build', 'bench'].flatMap((dir) =>
      walk(join(ROOT, dir), (file) => file.endsWith('.ts') && !file.endsWith('.test.ts')),
    );
    const missing = [...sources, join(ROOT, 'eslint.config.js')].flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, index) =>
          pathsInComment(line)
            .filter((path) => !existsSync(join(ROOT, path)))
            .map((path) => `${rel(file)}:${index + 1}: ${path}`),
        ),
    );
    assert.deepEqual(missing, [], 'a file was moved or renamed: update the comments that name it');
  });

  test('the path rule reads comments and messages, not code', () => {
    assert.deepEqual(pathsInComment(' * see main/shell/x.ts and docs/agent.md.'), ['main/shell/x.ts', 'docs/agent.md']);
    assert.deepEqual(pathsInComment("  message: 'see main/shell/x.ts',"), ['main/shell/x.ts']);
    assert.deepEqual(pathsInComment("const out = 'main/index.cjs';"), []);
  });
});

describe('the agent state diagrams (docs/agent-states.md)', () => {
  test('each diagram names exactly the states the code declares', async () => {
    const ipc = await import('../../shared/ipc.js');
    const kinds = (options: readonly { shape: { kind: { value: string } } }[]): string[] =>
      options.map((o) => o.shape.kind.value);
    const source = readFileSync(join(ROOT, 'main', 'core', 'session-types.ts'), 'utf8');
    const union = /export type SessionState\s*=([^;]+);/.exec(source)?.[1] ?? '';
    const sessionStates = [...union.matchAll(/'([^']+)'/g)].map((m) => m[1] ?? '');
    assert.deepEqual([...sessionStates].sort(), [...ipc.SESSION_STATES].sort(), 'SessionState and SESSION_STATES');

    const expected = new Map<string, string[]>([
      ['session', sessionStates],
      ['connection', [...ipc.AgentStatusViewSchema.shape.connection.options]],
      ['identity', kinds(ipc.IdentityStatusSchema.options)],
      ['phase', kinds(ipc.AgentPhaseSchema.options)],
    ]);
    const drawn = diagramStates(readFileSync(join(ROOT, 'docs', 'agent-states.md'), 'utf8'));
    assert.deepEqual([...drawn.keys()].sort(), [...expected.keys()].sort());
    for (const [tag, states] of expected) {
      assert.deepEqual([...(drawn.get(tag) ?? [])].sort(), [...states].sort(), `the ${tag} diagram`);
    }
  });

  test('every state a diagram declares is reached by a transition', () => {
    const markdown = readFileSync(join(ROOT, 'docs', 'agent-states.md'), 'utf8');
    for (const block of markdown.matchAll(/```mermaid\n([\s\S]*?)```/g)) {
      const body = block[1] ?? '';
      const ids = [...body.matchAll(/^\s*state\s+"[^"]+"\s+as\s+(\w+)/gm)].map((m) => m[1] ?? '');
      const targets = new Set([...body.matchAll(/-->\s*(\w+)/g)].map((m) => m[1] ?? ''));
      for (const id of ids) assert.ok(targets.has(id), `${id} is never entered`);
    }
  });
});
