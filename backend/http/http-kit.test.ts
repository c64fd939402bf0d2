import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatonError } from '../../shared/errors.js';
import { storageFault } from './http-kit.js';

const coded = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe('storageFault', () => {
  it('names a database that cannot do the work with a clear code, whatever the engine', () => {
    for (const error of [
      coded('ECONNREFUSED'),
      coded('57P01', 'terminating connection due to administrator command'),
      coded('40P01', 'deadlock detected'),
      coded('08006'),
      new Error('Connection terminated unexpectedly'),
      coded('25P03', 'terminating connection due to idle-in-transaction timeout'),
      new Error('Client has encountered a connection error and is not queryable'),
      new Error('timeout exceeded when trying to connect'),
    ]) {
      assert.equal(storageFault(error)?.code, 'DATABASE_UNREACHABLE', error.message);
    }
    assert.equal(storageFault(coded('SQLITE_FULL'))?.code, 'STORAGE_UNAVAILABLE');
    assert.equal(storageFault(coded('SQLITE_BUSY'))?.code, 'STORAGE_UNAVAILABLE');
  });

  it('tells a caller no more than that the database is unavailable: not a full disk, a read-only database or an I/O error', () => {
    for (const [code, message] of [
      ['SQLITE_FULL', 'database or disk is full'],
      ['SQLITE_READONLY', 'attempt to write a readonly database'],
      ['SQLITE_IOERR_FSYNC', 'disk I/O error'],
      ['SQLITE_CANTOPEN', 'unable to open database file'],
      // A failover DNS has not followed yet (a standby), or default_transaction_read_only.
      ['25006', 'cannot execute INSERT in a read-only transaction'],
    ] as const) {
      const error = coded(code, message);
      const fault = storageFault(error);
      assert.equal(fault?.code, 'STORAGE_UNAVAILABLE', code);
      assert.equal(fault.status, 503);
      assert.equal(fault.message, 'The backend cannot use its database; retry later', code);
      assert.equal(fault.cause, error, 'the driver’s own error stays with it, for the log');
    }
  });

  it('leaves everything else to the usual mapping', () => {
    assert.equal(storageFault(new Error('boom')), undefined);
    assert.equal(storageFault(coded('23505', 'duplicate key')), undefined);
    // The same refusal from SQLite is no more a storage fault than from PostgreSQL: the same answer on both engines.
    for (const code of [
      'SQLITE_CONSTRAINT_PRIMARYKEY',
      'SQLITE_CONSTRAINT_UNIQUE',
      'SQLITE_CONSTRAINT',
      'SQLITE_ERROR',
      'SQLITE_MISMATCH',
      'SQLITE_TOOBIG',
    ]) {
      assert.equal(storageFault(coded(code)), undefined, code);
    }
    assert.equal(storageFault(coded('SQLITE_IOERR_WRITE'))?.code, 'STORAGE_UNAVAILABLE');
    assert.equal(storageFault(coded('SQLITE_READONLY_DBMOVED'))?.code, 'STORAGE_UNAVAILABLE');
    assert.equal(storageFault(coded('SQLITE_CONSTRAINT_TRIGGER'))?.code, 'STORAGE_UNAVAILABLE');
    assert.equal(storageFault(coded('25001', 'there is already a transaction in progress')), undefined);
    assert.equal(storageFault(new BatonError('NOT_FOUND', 'no')), undefined);
    assert.equal(storageFault('text'), undefined);
  });
});
