/**
 * Canonical JSON for hashing and signing: object keys sorted by code unit, no whitespace,
 * `undefined` members dropped. The value space is that of JSON.parse output (no NaN, no Infinity).
 * This is the JCS subset (RFC 8785) that assurance events use: strings, integers, booleans, null,
 * arrays and plain objects.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record)
        .filter((k) => record[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
    }
    case 'bigint':
    case 'symbol':
    case 'undefined':
    case 'function':
      break;
  }
  throw new TypeError(`canonicalJson: unsupported type ${typeof value}`);
}
