import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { csvField, csvHeader } from './admin-insights.js';

describe('audit export CSV', () => {
  it('quotes every field and doubles quotes inside it', () => {
    assert.equal(csvField('say "hi", then go'), '"say ""hi"", then go"');
    assert.equal(csvField('two\r\nlines'), '"two\r\nlines"');
    assert.equal(csvField(null), '""');
    assert.equal(csvField(42), '"42"');
  });

  it('defuses text a spreadsheet would run as a formula', () => {
    for (const evil of ['=HYPERLINK("x")', '+1+1', '-2+3', '@SUM(A1)', '\tcmd', '\rcmd']) {
      assert.equal(csvField(evil).slice(0, 2), `"'`, evil);
    }
    assert.equal(csvField('session-established'), '"session-established"');
  });

  it('starts with a header row ending in CRLF', () => {
    assert.match(csvHeader(), /^"cursor","time",.*"hash"\r\n$/);
  });
});
