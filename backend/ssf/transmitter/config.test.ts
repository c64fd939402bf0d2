import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BatonError } from '../../../shared/errors.js';
import { loadBackendConfig } from '../../config.js';

/** `ssf.defaultSubjects` (SSF 1.0 §7.1.1 `default_subjects`): from the config file or `BATON_SSF_DEFAULT_SUBJECTS`. */
describe('Shared Signals transmitter settings: defaultSubjects', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-ssf-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function configFile(content: unknown): string {
    const file = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(content));
    return file;
  }

  it('is ALL unless set', () => {
    assert.equal(loadBackendConfig([], {}).ssf.defaultSubjects, 'ALL');
  });

  it('is read from BATON_SSF_DEFAULT_SUBJECTS, over the config file member by member', () => {
    assert.equal(loadBackendConfig([], { BATON_SSF_DEFAULT_SUBJECTS: 'NONE' }).ssf.defaultSubjects, 'NONE');
    const file = configFile({ ssf: { defaultSubjects: 'ALL', pushConcurrency: 4 } });
    const config = loadBackendConfig([], { BATON_CONFIG: file, BATON_SSF_DEFAULT_SUBJECTS: 'NONE' });
    assert.equal(config.ssf.defaultSubjects, 'NONE');
    assert.equal(config.ssf.pushConcurrency, 4, "the file's other ssf settings are kept");
    assert.equal(
      loadBackendConfig([], { BATON_CONFIG: configFile({ ssf: { defaultSubjects: 'NONE' } }) }).ssf.defaultSubjects,
      'NONE',
    );
  });

  it('refuses another value with SCHEMA_INVALID naming the setting, what it expects and what came', () => {
    for (const [env, file] of [
      [{ BATON_SSF_DEFAULT_SUBJECTS: 'none' }, undefined],
      [{ BATON_SSF_DEFAULT_SUBJECTS: 'SOME' }, undefined],
      [{}, { ssf: { defaultSubjects: 'EVERYONE' } }],
      [{}, { ssf: { defaultSubjects: true } }],
    ] as const) {
      const vars: NodeJS.ProcessEnv = { ...env, ...(file === undefined ? {} : { BATON_CONFIG: configFile(file) }) };
      assert.throws(
        () => loadBackendConfig([], vars),
        (error: unknown) => {
          assert.ok(error instanceof BatonError);
          assert.equal(error.code, 'SCHEMA_INVALID');
          assert.match(error.message, /ssf\.defaultSubjects: expected ALL or NONE, not /);
          if (file === undefined) assert.match(error.message, /BATON_SSF_DEFAULT_SUBJECTS/, 'the source is named');
          return true;
        },
        JSON.stringify(vars),
      );
    }
  });

  it("leaves a config file's malformed ssf section for the schema to refuse", () => {
    const file = configFile({ ssf: 'NONE' });
    assert.throws(
      () => loadBackendConfig([], { BATON_CONFIG: file, BATON_SSF_DEFAULT_SUBJECTS: 'NONE' }),
      (error: unknown) => error instanceof BatonError && error.code === 'SCHEMA_INVALID' && /ssf/.test(error.message),
    );
  });
});
