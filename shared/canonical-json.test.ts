import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalJson } from './canonical-json.js';

describe('canonicalJson', () => {
  it('gives the same text whatever order the keys were written in, at every depth', () => {
    const a = { type: 'session-locked', seq: 2, subject: { console: 'con_1', operator: 'op_1' }, reasons: ['idle'] };
    const b = { reasons: ['idle'], subject: { operator: 'op_1', console: 'con_1' }, seq: 2, type: 'session-locked' };
    assert.equal(canonicalJson(a), canonicalJson(b));
    assert.equal(
      canonicalJson(a),
      '{"reasons":["idle"],"seq":2,"subject":{"console":"con_1","operator":"op_1"},"type":"session-locked"}',
    );
  });

  it('keeps array order, since it carries meaning', () => {
    assert.notEqual(canonicalJson(['a', 'b']), canonicalJson(['b', 'a']));
    assert.equal(canonicalJson([3, [2, 1], { b: 1, a: 2 }]), '[3,[2,1],{"a":2,"b":1}]');
  });

  it('sorts keys by UTF-16 code unit, not by locale', () => {
    assert.equal(canonicalJson({ é: 1, z: 2, Z: 3, a: 4 }), '{"Z":3,"a":4,"z":2,"é":1}');
  });

  it('drops undefined members and writes undefined array slots as null, like JSON.stringify', () => {
    assert.equal(canonicalJson({ a: 1, b: undefined }), '{"a":1}');
    assert.equal(canonicalJson([1, undefined]), '[1,null]');
    assert.equal(canonicalJson({ a: 1, b: undefined }), canonicalJson({ a: 1 }));
  });

  it('escapes strings exactly as JSON does and writes no whitespace', () => {
    const value = { text: 'line\n"quoted"\u2028', n: null, t: true, f: false, i: -12, x: 1.5 };
    const text = canonicalJson(value);
    assert.equal(text, '{"f":false,"i":-12,"n":null,"t":true,"text":"line\\n\\"quoted\\"\u2028","x":1.5}');
    assert.deepEqual(JSON.parse(text), value);
  });

  it('rejects NaN and infinities, which JSON cannot carry and would hash ambiguously', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      assert.throws(() => canonicalJson(bad), TypeError);
      assert.throws(() => canonicalJson({ nested: [bad] }), TypeError);
    }
  });

  it('rejects values outside the JSON value space', () => {
    assert.throws(() => canonicalJson(10n), TypeError);
    assert.throws(() => canonicalJson(Symbol('s')), TypeError);
    assert.throws(() => canonicalJson(() => 1), TypeError);
    assert.throws(() => canonicalJson(undefined), TypeError);
  });

  it('round-trips what JSON.parse produced', () => {
    const parsed: unknown = JSON.parse('{"z":[1,{"y":null,"x":"é"}],"a":{"c":true,"b":0}}');
    assert.deepEqual(JSON.parse(canonicalJson(parsed)), parsed);
    assert.equal(canonicalJson(JSON.parse(canonicalJson(parsed))), canonicalJson(parsed));
  });

  it('keeps a member named __proto__ (from JSON.parse) as a member, so it is hashed', () => {
    const parsed = JSON.parse('{"b":1,"__proto__":{"x":2},"a":3}') as unknown;
    assert.equal(canonicalJson(parsed), '{"__proto__":{"x":2},"a":3,"b":1}');
  });
});
