/**
 * `npm run migrate-store -- --from <dataDir> --to postgres://user@host:port/database [--verify-only]`
 * (see backend/store/migrate-store.ts and docs/operations.md, "Moving an embedded deployment to PostgreSQL").
 * Exit 0: copied (or already copied) and verified; 1: the verification found a difference (named);
 * 2: refused or could not run, nothing written (a running backend, a target with other data, a bad URL,
 * an unreachable server, usage). The password of the URL is never printed.
 */
import { parseArgs } from 'node:util';
import { redactedDatabaseUrl } from '../config.js';
import { migrateStore, MigrationRefused } from './migrate-store.js';

const USAGE = `Usage: npm run migrate-store -- --from <dataDir> --to postgres://user@host:port/database [--verify-only]

Copies the embedded SQLite database of a stopped backend's data directory into an empty PostgreSQL
database in one transaction, then verifies the copy (rows and a sha256 digest per table, the revocation
epoch counter, every event chain re-walked, the newest signed checkpoint's heads). --verify-only compares an existing copy and
writes nothing. --to may be left out when BATON_DATABASE_URL is set; give the password as PGPASSWORD
or in ~/.pgpass rather than in the URL (a command line is visible to every user of the host).
Exit status: 0 verified, 1 a difference was found, 2 refused (nothing written) or could not run.`;

function secretsOf(url: string | undefined): string[] {
  const secrets: string[] = [];
  if (process.env.PGPASSWORD !== undefined && process.env.PGPASSWORD !== '') secrets.push(process.env.PGPASSWORD);
  if (url === undefined) return secrets;
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') secrets.push(parsed.password, decodeURIComponent(parsed.password));
    const password = parsed.searchParams.get('password');
    if (password !== null && password !== '') secrets.push(password);
  } catch {
    secrets.push(url); // not a URL: never echo it
  }
  return secrets;
}

async function main(): Promise<number> {
  let values: {
    from?: string | undefined;
    to?: string | undefined;
    'verify-only'?: boolean | undefined;
    help?: boolean | undefined;
  };
  try {
    ({ values } = parseArgs({
      options: {
        from: { type: 'string' },
        to: { type: 'string' },
        'verify-only': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const to = values.to ?? process.env.BATON_DATABASE_URL;
  const secrets = secretsOf(to);
  const scrub = (text: string): string => secrets.reduce((out, secret) => out.split(secret).join('***'), text);
  const say = (line: string) => process.stdout.write(`${scrub(line)}\n`);
  if (values.from === undefined || to === undefined || to.trim() === '') {
    process.stderr.write(`--from and --to (or BATON_DATABASE_URL) are required\n\n${USAGE}\n`);
    return 2;
  }
  try {
    const result = await migrateStore({
      from: values.from,
      to,
      verifyOnly: values['verify-only'] === true,
      print: say,
    });
    if (result.filesToCopy.length > 0) {
      say('');
      say(
        `Not in the database, so not copied: copy these files from ${values.from} to the data directory (--data-dir) of EVERY node, mode 0600, owned by the service user:`,
      );
      for (const file of result.filesToCopy) say(`  ${file}`);
    }
    say('');
    if (result.ok) {
      say(
        `OK: ${redactedDatabaseUrl(to)} ${result.mode === 'copied' ? 'holds a verified copy of' : 'is a verified copy of'} ${values.from} (${result.tables.length} tables, ${result.chains.length} event chains${result.warnings.length > 0 ? `, ${result.warnings.length} warnings above` : ''}).`,
      );
      return 0;
    }
    say(`DIFFERENCE: ${result.difference ?? 'the copy differs from the source'}`);
    say('The copy is not a faithful copy of the source: do not start nodes on it (docs/operations.md).');
    return 1;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof MigrationRefused) {
      process.stderr.write(`Refused: ${scrub(message)}\n`);
    } else {
      process.stderr.write(
        `Failed: ${scrub(message)}\nA failure during the copy rolls its one PostgreSQL transaction back (nothing of it remains); a failure after it, during the verification, leaves the copy: check it with --verify-only.\n`,
      );
    }
    return 2;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`Failed: ${error instanceof Error ? error.name : 'error'}\n`);
    process.exitCode = 2;
  },
);
