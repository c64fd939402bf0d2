import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { BatonError } from '../shared/errors.js';
import { MAX_WORKERS, defaultWorkers, loadBackendConfig, redactedDatabaseUrl } from './config.js';

const PG = 'postgres://baton:s3cret-pw@db1.example.internal:5432/baton';

function refused(fn: () => unknown, path: string): BatonError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof BatonError, `expected a BatonError, got ${String(caught)}`);
  assert.equal(caught.code, 'SCHEMA_INVALID');
  assert.ok(
    (caught.issues ?? []).some((i) => i.path === path),
    `no issue at ${path}: ${JSON.stringify(caught.issues)}`,
  );
  return caught;
}

describe('backend configuration: database, workers, staleness', () => {
  it('keeps the embedded SQLite default: no database URL, one worker, stale after 10 s', () => {
    const config = loadBackendConfig([], {});
    assert.equal(config.databaseUrl, undefined);
    assert.equal(config.workers, 1);
    assert.equal(config.staleAfterSeconds, 10);
    assert.equal(config.nodeId, undefined);
  });

  it('takes --database or BATON_DATABASE_URL (postgres:// or postgresql://), the flag winning', () => {
    assert.equal(loadBackendConfig(['--database', PG], {}).databaseUrl, PG);
    const other = 'postgresql://baton@db2.example.internal/baton?sslmode=require';
    assert.equal(loadBackendConfig([], { BATON_DATABASE_URL: other }).databaseUrl, other);
    assert.equal(loadBackendConfig(['--database', PG], { BATON_DATABASE_URL: other }).databaseUrl, PG);
  });

  it('with PostgreSQL defaults to one worker per core', () => {
    const config = loadBackendConfig(['--database', PG], {});
    assert.equal(config.workers, Math.min(MAX_WORKERS, availableParallelism()));
    assert.equal(defaultWorkers('postgres', 128), MAX_WORKERS);
    assert.equal(defaultWorkers('postgres', 0), 1);
    assert.equal(defaultWorkers('sqlite', 16), 1);
  });

  it('refuses any other URL with SCHEMA_INVALID at databaseUrl, never echoing the password', () => {
    for (const bad of [
      'mysql://baton:s3cret-pw@db1.example.internal/baton',
      'sqlite:///var/lib/baton/baton.db',
      'http://baton:s3cret-pw@db1.example.internal/',
      'postgres://baton:s3cret-pw@[not-a-host/baton',
      '/var/lib/baton/baton.db',
    ]) {
      const error = refused(() => loadBackendConfig(['--database', bad], {}), 'databaseUrl');
      assert.ok(!error.message.includes('s3cret-pw'), error.message);
      assert.ok(!JSON.stringify(error.issues).includes('s3cret-pw'));
      assert.match(error.message, /postgres:\/\/ or postgresql:\/\//);
    }
    refused(() => loadBackendConfig([], { BATON_DATABASE_URL: 'mysql://x@y/z' }), 'databaseUrl');
  });

  it('takes --workers and BATON_WORKERS in 1..64 with PostgreSQL', () => {
    assert.equal(loadBackendConfig(['--database', PG, '--workers', '3'], {}).workers, 3);
    assert.equal(loadBackendConfig([], { BATON_DATABASE_URL: PG, BATON_WORKERS: '64' }).workers, 64);
    for (const bad of ['0', '65', 'many', '-1', '1.5']) {
      refused(() => loadBackendConfig(['--database', PG, `--workers=${bad}`], {}), 'workers');
    }
  });

  it('refuses more than one worker on embedded SQLite, saying why (one writer)', () => {
    assert.equal(loadBackendConfig(['--workers', '1'], {}).workers, 1);
    const error = refused(() => loadBackendConfig(['--workers', '2'], {}), 'workers');
    assert.match(error.message, /one SQLite writer/);
    assert.match(error.message, /PostgreSQL/);
    refused(() => loadBackendConfig([], { BATON_WORKERS: '4' }), 'workers');
  });

  it('takes --stale-after-seconds and BATON_STALE_AFTER_SECONDS (1..3600)', () => {
    assert.equal(loadBackendConfig(['--stale-after-seconds', '30'], {}).staleAfterSeconds, 30);
    assert.equal(loadBackendConfig([], { BATON_STALE_AFTER_SECONDS: '5' }).staleAfterSeconds, 5);
    refused(() => loadBackendConfig(['--stale-after-seconds', '0'], {}), 'staleAfterSeconds');
    refused(() => loadBackendConfig(['--stale-after-seconds', '3601'], {}), 'staleAfterSeconds');
  });

  it('keeps every existing option working beside the new ones', () => {
    const config = loadBackendConfig(
      ['--database', PG, '--workers', '2', '--port', '9100', '--origin', 'https://a.example.internal'],
      { BATON_TRUST_PROXY: '10.0.0.0/8', BATON_DURABILITY: 'normal' },
    );
    assert.equal(config.port, 9100);
    assert.deepEqual(config.origins, ['https://a.example.internal']);
    assert.deepEqual(config.trustProxy, ['10.0.0.0/8']);
    assert.equal(config.durability, 'normal');
    assert.equal(config.workers, 2);
    assert.ok(Object.isFrozen(config));
  });

  it('redacts the password and secret parameters of a database URL', () => {
    assert.equal(redactedDatabaseUrl(PG), 'postgres://baton:***@db1.example.internal:5432/baton');
    assert.equal(
      redactedDatabaseUrl('postgresql://baton@db1.example.internal/baton?sslmode=require&password=pw2&sslpassword=pw3'),
      'postgresql://baton@db1.example.internal/baton?sslmode=require&password=***&sslpassword=***',
    );
    assert.equal(
      redactedDatabaseUrl('postgres://:pw4@db1.example.internal/baton'),
      'postgres://:***@db1.example.internal/baton',
    );
    assert.equal(redactedDatabaseUrl('postgres://db1.example.internal/baton'), 'postgres://db1.example.internal/baton');
    assert.equal(redactedDatabaseUrl('not a url :pw5@'), '[unparseable database URL]');
    for (const url of [PG, 'postgres://u:p%40ss@h/d']) assert.ok(!redactedDatabaseUrl(url).includes('s3cret'));
  });
});
