/**
 * Baton's assurance levels, weakest first, with the OpenID `acr` value each one is announced as
 * (the same table as Baton's shared/levels.ts; this package stands alone and copies it).
 */
export const LEVELS = ['presence', 'verified', 'hardware'] as const;
export type Level = (typeof LEVELS)[number];

export const LEVEL_ACR: Readonly<Record<Level, string>> = {
  presence: 'urn:baton:acr:presence',
  verified: 'phr',
  hardware: 'phrh',
};

export function isLevel(value: unknown): value is Level {
  return typeof value === 'string' && (LEVELS as readonly string[]).includes(value);
}

/** Whether `level` is `required` or stronger. */
export function meets(level: Level, required: Level): boolean {
  return LEVELS.indexOf(level) >= LEVELS.indexOf(required);
}

/** The acr values that satisfy `required`, strongest last (what an RFC 9470 challenge's `acr_values` lists). */
export function acrValuesFor(required: Level): string[] {
  return LEVELS.slice(LEVELS.indexOf(required)).map((level) => LEVEL_ACR[level]);
}
