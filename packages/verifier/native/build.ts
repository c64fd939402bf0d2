/**
 * Builds the verifier's native ES256 addon (es256.c) with node-gyp, then has the library load it and check it once.
 * Needs a C compiler, make and python3 (node-gyp's), and Node's headers: those installed beside this Node are used
 * when present (no download). Without the addon @baton/verifier verifies with node:crypto.
 *
 *   npm run build:verifier-native     (node --import tsx packages/verifier/native/build.ts)
 *
 * Exit status 0: built and self-checked; 1: not built (or not usable, then removed), with the reason on stderr.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const say = (line: string) => process.stderr.write(`[verifier native] ${line}\n`);

// npm sets npm_config_node_gyp for its scripts; otherwise the node-gyp npm ships beside this Node, or one on PATH.
const bundled = resolve(process.execPath, '../../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
const nodeGyp = [process.env.npm_config_node_gyp, bundled].find((p) => p !== undefined && p !== '' && existsSync(p));
const [command, ...prefixArgs] = nodeGyp === undefined ? ['node-gyp'] : [process.execPath, nodeGyp];
// Headers installed with this Node (Debian and NodeSource packages, the official tarballs): nothing to download.
const prefix = resolve(process.execPath, '../..');
const nodedir = existsSync(join(prefix, 'include/node/common.gypi')) ? [`--nodedir=${prefix}`] : [];

const build = spawnSync(command, [...prefixArgs, 'rebuild', ...nodedir], {
  cwd: here,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'pipe'],
  timeout: 300_000,
});
if (build.status !== 0) {
  say(`not built: node-gyp ${build.error === undefined ? `exited with ${build.status}` : build.error.message}.`);
  say('It needs a C compiler, make and python3 (Debian: apt-get install g++ make python3) and Node headers.');
  const output = `${build.stdout ?? ''}${build.stderr ?? ''}`.split('\n').filter((l) => !l.startsWith('gyp info'));
  process.stderr.write(`${output.slice(-15).join('\n')}\n`);
  process.exit(1);
}

// The library loads it in a fresh process, checks one signature and one forgery, and says what it chose.
const check = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--input-type=module',
    '-e',
    "import('./es256-native.ts').then((m) => console.log(JSON.stringify(m.es256Backend)))",
  ],
  { cwd: join(here, '../src'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 },
);
const last = check.status === 0 ? check.stdout.trim().split('\n').pop() : undefined;
const backend = last === undefined ? undefined : (JSON.parse(last) as { name: string; reason: string });
if (backend?.name !== 'openssl-prepared') {
  const why = backend?.reason ?? check.stderr.trim().split('\n').slice(-3).join(' ');
  say(`built, but not usable: ${why}; removed.`);
  rmSync(join(here, 'build'), { recursive: true, force: true });
  process.exit(1);
}
say('built and self-checked: @baton/verifier verifies ES256 with it.');
