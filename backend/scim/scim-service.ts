/**
 * SCIM 2.0 provisioning of operators (RFC 7643/7644): a directory (an identity provider holding a
 * bearer token an admin issued) creates, replaces, patches, deactivates and deletes Users, and
 * manages Groups whose members get the Baton roles the directory's group→role mapping names.
 * A User is a Baton operator: deactivating or deleting it revokes the operator through the existing
 * revocation path (RevocationHub.revoke, pushed to every console); every change is a
 * `scim-provisioning` event naming the directory.
 */
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { z } from 'zod';
import { BatonError } from '../../shared/errors.js';
import { newId, newSecretToken, sha256Hex } from '../crypto/secrets.js';
import type { OperatorRecord, Store } from '../store/repositories.js';
import type { EventLog, UnitOfWork } from '../services/event-log.js';
import type { RevocationHub } from '../services/revocation-hub.js';
import type { AdminAuth } from '../services/admin-auth.js';
import type { DirectoryRecord, ScimGroupRecord, ScimUserRecord } from './repository.js';
import {
  SCIM_BATON_OPERATOR,
  SCIM_ENTERPRISE_USER,
  SCIM_GROUP,
  SCIM_LIST,
  SCIM_MAX_RESULTS,
  SCIM_PATCH,
  SCIM_USER,
  parseFilter,
} from './scim-schema.js';

const Role = z.string().regex(/^[a-z][a-z0-9-]{0,39}$/);
export const GroupRolesSchema = z
  .record(z.string().min(1).max(256), z.array(Role).max(20))
  .refine((m) => Object.keys(m).length <= 500, 'at most 500 groups');
export const CreateDirectorySchema = z.strictObject({
  name: z.string().trim().min(1).max(100),
  /** Group displayName → Baton roles (e.g. `{ "Tellers": ["teller"] }`); matched case-insensitively. */
  groupRoles: GroupRolesSchema.default({}),
});
export const GroupRolesRequestSchema = z.strictObject({ groupRoles: GroupRolesSchema });

type Json = Record<string, unknown>;

export interface DirectoryView {
  id: string;
  name: string;
  groupRoles: Record<string, string[]>;
  createdAt: number;
  createdBy: string;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

function directoryView(d: DirectoryRecord): DirectoryView {
  return {
    id: d.id,
    name: d.name,
    groupRoles: d.groupRoles,
    createdAt: d.createdAt,
    createdBy: d.createdBy,
    revokedAt: d.revokedAt,
    lastUsedAt: d.lastUsedAt,
  };
}

const invalid = (message: string) => new BatonError('SCIM_INVALID_VALUE', message);

function asObject(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(`${what} must be a JSON object`);
  return value as Json;
}

/** `true`/`false`, or the strings Entra ID sends ("True", "False"). */
function asBoolean(value: unknown, what: string): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^(true|false)$/i.test(value)) return value.toLowerCase() === 'true';
  throw invalid(`${what} must be a boolean`);
}

function optString(value: unknown, what: string, max = 256): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length > max)
    throw invalid(`${what} must be a string of at most ${max} characters`);
  return value;
}

/** What the operator is called: displayName, else name.formatted, else given + family name, else userName. */
function displayNameOf(userName: string, resource: Json): string {
  const name = typeof resource.name === 'object' && resource.name !== null ? (resource.name as Json) : {};
  const given = typeof name.givenName === 'string' ? name.givenName : '';
  const family = typeof name.familyName === 'string' ? name.familyName : '';
  const candidates = [resource.displayName, name.formatted, `${given} ${family}`.trim(), userName];
  const chosen = candidates.find((c): c is string => typeof c === 'string' && c.trim() !== '') ?? userName;
  return chosen.trim().slice(0, 100);
}

/** The attributes kept as the directory sent them (the read-only and separately stored ones removed). */
function resourceOf(body: Json): Json {
  const {
    id: _id,
    meta: _meta,
    schemas: _schemas,
    userName: _u,
    externalId: _e,
    active: _a,
    password: _p,
    ...rest
  } = body;
  delete rest[SCIM_BATON_OPERATOR];
  return rest;
}

/** A user's state as PATCH operations see it. */
interface UserState {
  userName: string;
  externalId: string | null;
  active: boolean;
  resource: Json;
}

const USER_CORE_PREFIX = /^urn:ietf:params:scim:schemas:core:2\.0:User:/i;
const GROUP_CORE_PREFIX = /^urn:ietf:params:scim:schemas:core:2\.0:Group:/i;

/** One PATCH path: `attr`, `attr.sub`, `attr[sub eq "v"]`, `attr[sub eq "v"].sub`, or `<extension urn>:attr`. */
interface PatchPath {
  /** Where the attribute lives: the resource's top level, or an extension's object. */
  extension: string | undefined;
  attribute: string;
  filter: { attribute: string; value: string } | undefined;
  sub: string | undefined;
}

function parsePath(path: string, core: RegExp): PatchPath {
  let rest = path.trim().replace(core, '');
  let extension: string | undefined;
  const ext = /^(urn:[^[\]]+):([A-Za-z][\w$-]*(?:[.[].*)?)$/i.exec(rest);
  if (ext !== null) {
    extension = ext[1];
    rest = ext[2] ?? '';
  }
  const m =
    /^([A-Za-z][\w$-]*)(?:\[\s*([A-Za-z][\w$-]*)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*\])?(?:\.([A-Za-z][\w$-]*))?$/i.exec(
      rest,
    );
  if (m === null) throw new BatonError('SCIM_INVALID_PATH', `Unsupported PATCH path "${path.slice(0, 200)}"`);
  return {
    extension,
    attribute: m[1] ?? '',
    filter: m[2] === undefined ? undefined : { attribute: m[2], value: filterValue(m[3] ?? '', path) },
    sub: m[4],
  };
}

/** The string of a path filter (`emails[type eq "work"]`), its escapes JSON's; a bad escape is an invalid path. */
function filterValue(quoted: string, path: string): string {
  try {
    return JSON.parse(`"${quoted}"`) as string;
  } catch {
    throw new BatonError(
      'SCIM_INVALID_PATH',
      `Unsupported PATCH path "${path.slice(0, 200)}": bad escape in its filter`,
    );
  }
}

/** Finds a key case-insensitively (SCIM attribute names are case-insensitive). */
function keyIn(obj: Json, name: string): string {
  return Object.keys(obj).find((k) => k.toLowerCase() === name.toLowerCase()) ?? name;
}

const PatchSchema = z.looseObject({
  schemas: z.array(z.string()).optional(),
  Operations: z
    .array(z.looseObject({ op: z.string(), path: z.string().max(1000).optional(), value: z.unknown().optional() }))
    .min(1)
    .max(1000),
});

function parsePatch(body: unknown) {
  const parsed = PatchSchema.safeParse(body);
  if (!parsed.success) throw new BatonError('SCIM_INVALID_SYNTAX', 'A PATCH body is a PatchOp message with Operations');
  if (parsed.data.schemas !== undefined && !parsed.data.schemas.includes(SCIM_PATCH)) {
    throw new BatonError('SCIM_INVALID_SYNTAX', `A PATCH body names the schema ${SCIM_PATCH}`);
  }
  return parsed.data.Operations.map((o) => {
    const op = o.op.toLowerCase();
    if (op !== 'add' && op !== 'replace' && op !== 'remove')
      throw new BatonError('SCIM_INVALID_SYNTAX', `Unknown PATCH op "${o.op}"`);
    return { op, path: o.path, value: o.value };
  });
}

const readOnly = (what: string) => new BatonError('SCIM_MUTABILITY', `${what} is read-only`);
const badPath = (path: string, why: string) =>
  new BatonError('SCIM_INVALID_PATH', `Unsupported PATCH path "${path.slice(0, 200)}": ${why}`);

/**
 * The User attributes of RFC 7643 §4.1 Baton stores as sent, by their lower-case name: their name as
 * stored and the shape a value must have (`null` is no value). The core attributes Baton keeps itself
 * (`id`, `meta`, `schemas`, `userName`, `externalId`, `active`) and `password` are not among them.
 */
const USER_ATTRIBUTES = new Map<string, { name: string; shape: 'string' | 'complex' | 'multi' }>(
  (
    [
      ['name', 'complex'],
      ['displayName', 'string'],
      ['nickName', 'string'],
      ['profileUrl', 'string'],
      ['title', 'string'],
      ['userType', 'string'],
      ['preferredLanguage', 'string'],
      ['locale', 'string'],
      ['timezone', 'string'],
      ['emails', 'multi'],
      ['phoneNumbers', 'multi'],
      ['ims', 'multi'],
      ['photos', 'multi'],
      ['addresses', 'multi'],
      ['groups', 'multi'],
      ['entitlements', 'multi'],
      ['roles', 'multi'],
      ['x509Certificates', 'multi'],
    ] as const
  ).map(([name, shape]) => [name.toLowerCase(), { name, shape }]),
);

/** The keys a stored resource never carries (kept apart, or read-only): the view adds its own. */
const USER_RESERVED = new Set(
  ['id', 'meta', 'schemas', 'userName', 'externalId', 'active', 'password', SCIM_USER, SCIM_BATON_OPERATOR].map((k) =>
    k.toLowerCase(),
  ),
);

/** `name`'s sub-attributes (RFC 7643 §4.1.1), by their lower-case name. */
const NAME_PARTS = new Map(
  ['formatted', 'familyName', 'givenName', 'middleName', 'honorificPrefix', 'honorificSuffix'].map((n) => [
    n.toLowerCase(),
    n,
  ]),
);

/** The attribute names of a User or a Group as RFC 7643 spells them, by their lower-case name. */
const USER_NAMES = new Map(
  [
    'id',
    'meta',
    'schemas',
    'userName',
    'externalId',
    'active',
    'password',
    SCIM_ENTERPRISE_USER,
    SCIM_BATON_OPERATOR,
    ...[...USER_ATTRIBUTES.values()].map((a) => a.name),
  ].map((n) => [n.toLowerCase(), n]),
);
const GROUP_NAMES = new Map(
  ['id', 'meta', 'schemas', 'displayName', 'externalId', 'members'].map((n) => [n.toLowerCase(), n]),
);

/** `obj` with the names `names` knows spelled as RFC 7643 does (attribute names are case-insensitive, §2.1). */
function canonical(obj: Json, names: Map<string, string>, what: string): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(obj)) {
    const name = names.get(key.toLowerCase()) ?? key;
    if (Object.hasOwn(out, name))
      throw new BatonError(
        'SCIM_INVALID_SYNTAX',
        `${what} names "${name}" twice (attribute names are case-insensitive)`,
      );
    out[name] = value;
  }
  return out;
}

/** A User body or stored resource with its core attribute names (and `name`'s parts) spelled as RFC 7643 does. */
function canonicalUser(obj: Json, what: string): Json {
  const out = canonical(obj, USER_NAMES, what);
  if (typeof out.name === 'object' && out.name !== null && !Array.isArray(out.name))
    out.name = canonical(out.name as Json, NAME_PARTS, `${what}'s name`);
  return out;
}

/** Refuses (invalidValue) a stored attribute whose value has the wrong shape: `emails: "x"`, `name: 42`. */
function checkUserResource(resource: Json): void {
  for (const [key, value] of Object.entries(resource)) {
    if (value === null) continue;
    if (key.toLowerCase() === SCIM_ENTERPRISE_USER.toLowerCase()) {
      asObject(value, key);
      continue;
    }
    const spec = USER_ATTRIBUTES.get(key.toLowerCase());
    if (spec === undefined) continue;
    if (spec.shape === 'string' && typeof value !== 'string') throw invalid(`${spec.name} must be a string`);
    if (spec.shape === 'complex') asObject(value, spec.name);
    if (
      spec.shape === 'multi' &&
      (!Array.isArray(value) || !value.every((e) => typeof e === 'object' && e !== null && !Array.isArray(e)))
    )
      throw invalid(`${spec.name} must be a list of objects`);
  }
}

/** The key the User carries an extension under (case-insensitively); the enterprise one may be new. */
function extensionKey(state: UserState, urn: string): string | undefined {
  const lower = urn.toLowerCase();
  return (
    Object.keys(state.resource).find((k) => k.toLowerCase() === lower && /^urn:/i.test(k)) ??
    (lower === SCIM_ENTERPRISE_USER.toLowerCase() ? SCIM_ENTERPRISE_USER : undefined)
  );
}

/**
 * A schema URN no User extension can be: SCIM's own core schemas and messages (a Group's or a
 * PatchOp's attributes are not a User's). Any other URN (an Entra/Okta custom extension such as
 * `urn:ietf:params:scim:schemas:extension:<App>:2.0:User`) is one the User may take on.
 */
const NOT_AN_EXTENSION = /^urn:ietf:params:scim:(schemas:core:|api:)/i;

/** A User extension's whole URN by the convention every directory follows: it ends in `:User`. */
const WHOLE_USER_EXTENSION = /^urn:.+:User$/i;

/** Applies one operation on a user's attributes at `path`. */
function applyUserPath(state: UserState, op: 'add' | 'replace' | 'remove', rawPath: string, value: unknown): void {
  const trimmed = rawPath.trim();
  if (trimmed.toLowerCase() === SCIM_BATON_OPERATOR.toLowerCase()) throw readOnly(SCIM_BATON_OPERATOR);
  if (/^urn:/i.test(trimmed) && !USER_CORE_PREFIX.test(trimmed)) {
    // A whole extension: removed, or its attributes merged. One the User does not carry yet (its URN
    // ends in `:User`) is added with them (RFC 7644 §3.5.2); removing it is nothing to do.
    const whole =
      extensionKey(state, trimmed) ??
      (WHOLE_USER_EXTENSION.test(trimmed) && !NOT_AN_EXTENSION.test(trimmed) ? trimmed : undefined);
    if (whole !== undefined) {
      if (op === 'remove') delete state.resource[whole];
      else {
        const before = state.resource[whole];
        state.resource[whole] = {
          ...(typeof before === 'object' && before !== null ? (before as Json) : {}),
          ...asObject(value, whole),
        };
      }
      return;
    }
  }
  const p = parsePath(rawPath, USER_CORE_PREFIX);
  const top = p.attribute.toLowerCase();
  let container = state.resource;
  let attrName = p.attribute;
  if (p.extension !== undefined) {
    // RFC 7644 §3.5.2: Baton's extension is read-only; an extension the User does not carry yet is
    // added (Entra and Okta send a custom attribute's first value as a PATCH add), and removing an
    // attribute of one is nothing to do. SCIM's core schemas and messages are no User extension.
    if (p.extension.toLowerCase() === SCIM_BATON_OPERATOR.toLowerCase()) throw readOnly(SCIM_BATON_OPERATOR);
    if (NOT_AN_EXTENSION.test(p.extension))
      throw badPath(rawPath, `"${p.extension.slice(0, 200)}" is not a User extension`);
    const key = extensionKey(state, p.extension);
    if (key === undefined && op === 'remove') return;
    container = asObject((state.resource[key ?? p.extension] ??= {}), key ?? p.extension);
  } else {
    if (top === 'id' || top === 'meta' || top === 'schemas') throw readOnly(`"${p.attribute}"`);
    // Never stored or returned (as on POST and PUT).
    if (top === 'password') return;
    if (top === 'username' || top === 'externalid' || top === 'active') {
      if (p.filter !== undefined || p.sub !== undefined)
        throw badPath(rawPath, `"${p.attribute}" is a single value with no sub-attributes`);
      if (top === 'username') {
        if (op === 'remove') throw invalid('userName is required');
        const v = optString(value, 'userName');
        if (v === null || v.trim() === '') throw invalid('userName is required');
        state.userName = v;
      } else if (top === 'externalid') {
        state.externalId = op === 'remove' ? null : optString(value, 'externalId');
      } else {
        if (op === 'remove') throw invalid('active cannot be removed');
        state.active = asBoolean(value, 'active');
      }
      return;
    }
    attrName = USER_ATTRIBUTES.get(top)?.name ?? p.attribute;
  }
  const attrKey = keyIn(container, attrName);
  if (p.filter === undefined) {
    if (p.sub === undefined) {
      if (op === 'remove') delete container[attrKey];
      else if (op === 'add' && Array.isArray(container[attrKey]) && Array.isArray(value)) {
        container[attrKey] = [...(container[attrKey] as unknown[]), ...(value as unknown[])];
      } else container[attrKey] = value;
      return;
    }
    const inner = asObject((container[attrKey] ??= {}), p.attribute);
    if (op === 'remove') delete inner[keyIn(inner, p.sub)];
    else inner[keyIn(inner, p.sub)] = value;
    return;
  }
  // A multi-valued attribute's element chosen by a filter, e.g. emails[type eq "work"].value.
  const list = Array.isArray(container[attrKey]) ? (container[attrKey] as unknown[]) : [];
  const matches = (e: unknown) =>
    typeof e === 'object' &&
    e !== null &&
    String((e as Json)[keyIn(e as Json, p.filter?.attribute ?? '')]) === p.filter?.value;
  if (op === 'remove') {
    if (p.sub === undefined) container[attrKey] = list.filter((e) => !matches(e));
    else for (const e of list.filter(matches)) delete (e as Json)[keyIn(e as Json, p.sub)];
    return;
  }
  let element = list.find(matches) as Json | undefined;
  if (element === undefined) {
    element = { [p.filter.attribute]: p.filter.value };
    list.push(element);
  }
  if (p.sub === undefined) Object.assign(element, asObject(value, rawPath));
  else element[keyIn(element, p.sub)] = value;
  container[attrKey] = list;
}

/**
 * The attributes a PATCH changed (added, changed or removed at the top level, the extensions included),
 * spelled as RFC 7643 does and checked for their shape; the others stay as stored. A User stored before
 * those checks with a wrongly shaped or case-duplicated attribute can still be patched (deactivated
 * above all): only what the PATCH touched is refused.
 */
function canonicalTouched(before: Json, after: Json): Json {
  const touched = new Set(
    Object.keys(after).filter((k) => !Object.hasOwn(before, k) || !isDeepStrictEqual(before[k], after[k])),
  );
  const names = Object.keys(after).map((k) => (touched.has(k) ? (USER_NAMES.get(k.toLowerCase()) ?? k) : k));
  const out: Json = {};
  for (const [i, key] of Object.keys(after).entries()) {
    const name = names[i] ?? key;
    if (touched.has(key)) {
      if (names.some((other, j) => j !== i && other === name))
        throw new BatonError(
          'SCIM_INVALID_SYNTAX',
          `The User names "${name}" twice (attribute names are case-insensitive)`,
        );
    }
    out[name] = after[key];
  }
  const changed: Json = {};
  for (const [i, key] of Object.keys(after).entries()) {
    if (!touched.has(key)) continue;
    const name = names[i] ?? key;
    if (name === 'name' && typeof out.name === 'object' && out.name !== null && !Array.isArray(out.name))
      out.name = canonical(out.name as Json, NAME_PARTS, "The User's name");
    changed[name] = out[name];
  }
  checkUserResource(changed);
  return out;
}

function applyUserPatch(state: UserState, id: string, ops: ReturnType<typeof parsePatch>, before: Json): void {
  for (const { op, path, value } of ops) {
    if (path !== undefined && path !== '') {
      applyUserPath(state, op as 'add' | 'replace' | 'remove', path, value);
      continue;
    }
    if (op === 'remove') throw new BatonError('SCIM_INVALID_PATH', 'remove needs a path');
    // No path: the value's attributes, each as if named by a path (Entra: {"active": false}). The
    // read-only ones a directory echoes from a GET (schemas, meta, Baton's extension, the same id) are
    // skipped, as on a Group; another id is refused.
    for (const [k, v] of Object.entries(asObject(value, 'value'))) {
      const key = k.toLowerCase();
      if (key === 'id' && v === id) continue;
      if (key === 'schemas' || key === 'meta' || key === SCIM_BATON_OPERATOR.toLowerCase()) continue;
      applyUserPath(state, op as 'add' | 'replace', k, v);
    }
  }
  state.resource = canonicalTouched(before, state.resource);
}

function membersOf(value: unknown): string[] {
  if (!Array.isArray(value)) throw invalid('members must be an array');
  return value.map((m) => {
    const member = asObject(m, 'a member');
    const v = member[keyIn(member, 'value')];
    if (typeof v !== 'string' || v === '') throw invalid('a member needs a value (a User id)');
    return v;
  });
}

export class ScimService {
  constructor(
    private readonly deps: {
      store: Store;
      events: EventLog;
      revocations: RevocationHub;
      clock: () => number;
      logger: Logger;
      /**
       * Ends the admin sessions (and live streams, on every node) of an operator whose groups no longer
       * map to the admin role, in the unit that removes it. Absent only in tests that hold no admin session.
       */
      adminSessions?: Pick<AdminAuth, 'endOperatorSessionsIn'>;
    },
  ) {}

  // ---- admin ----

  async createDirectory(
    input: z.infer<typeof CreateDirectorySchema>,
    actor: string,
  ): Promise<{ directory: DirectoryView; token: string }> {
    const token = newSecretToken('bscim');
    const record: DirectoryRecord = {
      id: newId('dir'),
      name: input.name,
      tokenHash: sha256Hex(token),
      groupRoles: input.groupRoles,
      createdAt: this.deps.clock(),
      createdBy: actor,
      revokedAt: null,
      lastUsedAt: null,
    };
    await this.deps.events.atomically(async (uow) => {
      await uow.store.scim.insertDirectory(record);
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: 'success',
        reasons: ['scim-directory-created'],
        detail: { actor, directory: record.id, name: record.name },
      });
    });
    return { directory: directoryView(record), token };
  }

  async directories(): Promise<DirectoryView[]> {
    return (await this.deps.store.scim.directories()).map(directoryView);
  }

  async setGroupRoles(id: string, groupRoles: Record<string, string[]>, actor: string): Promise<DirectoryView> {
    await this.deps.events.atomically(async (uow) => {
      const dir = await uow.store.scim.directory(id);
      if (dir === undefined) throw new BatonError('NOT_FOUND', `No directory "${id}"`);
      await uow.store.scim.setGroupRoles(id, groupRoles);
      const users = await uow.store.scim.users(id, { offset: 0, limit: 1_000_000 });
      await this.syncOperators(uow, { ...dir, groupRoles }, users.rows);
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: 'success',
        reasons: ['scim-group-roles-changed'],
        detail: { actor, directory: id, groupRoles: JSON.stringify(groupRoles).slice(0, 500) },
      });
    });
    const dir = await this.deps.store.scim.directory(id);
    if (dir === undefined) throw new BatonError('NOT_FOUND', `No directory "${id}"`);
    return directoryView(dir);
  }

  async revokeDirectory(id: string, actor: string): Promise<DirectoryView> {
    await this.deps.events.atomically(async (uow) => {
      if ((await uow.store.scim.directory(id)) === undefined) throw new BatonError('NOT_FOUND', `No directory "${id}"`);
      if (!(await uow.store.scim.revokeDirectory(id, this.deps.clock()))) {
        throw new BatonError('SCHEMA_INVALID', `The directory "${id}" is already revoked`);
      }
      await uow.record({
        type: 'admin-action',
        subject: {},
        outcome: 'success',
        reasons: ['scim-directory-revoked'],
        detail: { actor, directory: id },
      });
    });
    const dir = await this.deps.store.scim.directory(id);
    if (dir === undefined) throw new BatonError('NOT_FOUND', `No directory "${id}"`);
    return directoryView(dir);
  }

  // ---- SCIM protocol ----

  /** The directory whose live token this is; SCIM_AUTH_FAILED otherwise. */
  async authenticate(authorization: string | undefined): Promise<DirectoryRecord> {
    const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
    if (token === undefined) throw new BatonError('SCIM_AUTH_FAILED', 'A directory bearer token is required');
    const dir = await this.deps.store.scim.directoryByTokenHash(sha256Hex(token));
    if (dir === undefined || dir.revokedAt !== null)
      throw new BatonError('SCIM_AUTH_FAILED', 'The bearer token is not a live directory token');
    const now = this.deps.clock();
    // At most one write a minute per directory for "last used".
    if (dir.lastUsedAt === null || now - dir.lastUsedAt > 60_000)
      await this.deps.store.scim.touchDirectory(dir.id, now);
    return dir;
  }

  /**
   * The User as the directory reads it (GET, a list or filter page, the answer of POST/PUT/PATCH). An
   * inactive User whose operator is still live (its revocation after the deactivation's commit failed)
   * has that operator revoked first: a reconciling directory sees `active: false` and sends nothing, so
   * Baton heals it itself. If that revocation fails the read fails (503): never an answer of
   * `active: false` over a live operator. An active User costs no more than its one operator read.
   */
  async userView(dir: DirectoryRecord, u: ScimUserRecord, base: string): Promise<Json> {
    let operator = await this.deps.store.operators.get(u.operatorId);
    if (!u.active && operator !== undefined && operator.revokedAt === null) {
      try {
        await this.revokeIfLive(dir, u.operatorId, 'deactivated');
      } catch (error) {
        this.deps.logger.warn(
          { err: error, directory: dir.id, scimId: u.id, operatorId: u.operatorId },
          'SCIM: revoking the operator of an inactive User failed',
        );
        throw new BatonError('BACKEND_BUSY', 'The inactive User’s operator could not be revoked yet; retry');
      }
      operator = await this.deps.store.operators.get(u.operatorId);
    }
    // The stored attributes without any key Baton answers itself, and spread first: none replaces a
    // core one (a User stored before PATCH paths such as `id.x` were refused may carry such keys).
    const stored = Object.fromEntries(Object.entries(u.resource).filter(([k]) => !USER_RESERVED.has(k.toLowerCase())));
    const extensions = Object.keys(stored).filter((k) => /^urn:/i.test(k));
    return {
      ...stored,
      schemas: [SCIM_USER, ...extensions, SCIM_BATON_OPERATOR],
      id: u.id,
      ...(u.externalId === null ? {} : { externalId: u.externalId }),
      userName: u.userName,
      active: u.active,
      [SCIM_BATON_OPERATOR]: { operatorId: u.operatorId, roles: operator?.roles ?? [] },
      meta: {
        resourceType: 'User',
        created: new Date(u.createdAt).toISOString(),
        lastModified: new Date(u.updatedAt).toISOString(),
        location: `${base}/Users/${u.id}`,
        version: `W/"${u.version}"`,
      },
    };
  }

  groupView(g: ScimGroupRecord, base: string): Json {
    return {
      schemas: [SCIM_GROUP],
      id: g.id,
      ...(g.externalId === null ? {} : { externalId: g.externalId }),
      displayName: g.displayName,
      members: g.members.map((m) => ({ value: m, $ref: `${base}/Users/${m}`, type: 'User' })),
      meta: {
        resourceType: 'Group',
        created: new Date(g.createdAt).toISOString(),
        lastModified: new Date(g.updatedAt).toISOString(),
        location: `${base}/Groups/${g.id}`,
        version: `W/"${g.version}"`,
      },
    };
  }

  private page(query: URLSearchParams): { offset: number; limit: number; startIndex: number } {
    const int = (name: string, fallback: number) => {
      const raw = query.get(name);
      if (raw === null || raw === '') return fallback;
      const n = Number(raw);
      if (!Number.isInteger(n)) throw invalid(`${name} must be an integer`);
      return n;
    };
    // RFC 7644 §3.4.2.4: startIndex below 1 is 1; a negative count is 0. A startIndex past every result
    // gives an empty page: one too large for the database (past 2^53) is brought down to what still is.
    const startIndex = Math.min(Number.MAX_SAFE_INTEGER, Math.max(1, int('startIndex', 1)));
    const limit = Math.min(SCIM_MAX_RESULTS, Math.max(0, int('count', 100)));
    return { offset: startIndex - 1, limit, startIndex };
  }

  async listUsers(dir: DirectoryRecord, query: URLSearchParams, base: string): Promise<Json> {
    const eq = parseFilter(query.get('filter'), ['userName', 'externalId', 'id']);
    const { offset, limit, startIndex } = this.page(query);
    const { total, rows } = await this.deps.store.scim.users(dir.id, {
      ...(eq === undefined ? {} : { eq }),
      offset,
      limit,
    });
    const resources = await Promise.all(rows.map((u) => this.userView(dir, u, base)));
    return {
      schemas: [SCIM_LIST],
      totalResults: total,
      startIndex,
      itemsPerPage: resources.length,
      Resources: resources,
    };
  }

  async listGroups(dir: DirectoryRecord, query: URLSearchParams, base: string): Promise<Json> {
    const eq = parseFilter(query.get('filter'), ['displayName', 'externalId', 'id']);
    const { offset, limit, startIndex } = this.page(query);
    const { total, rows } = await this.deps.store.scim.groups(dir.id, {
      ...(eq === undefined ? {} : { eq }),
      offset,
      limit,
    });
    // `excludedAttributes=members` (Entra asks so): the members are left out.
    const excluded = (query.get('excludedAttributes') ?? '')
      .toLowerCase()
      .split(',')
      .map((s) => s.trim());
    const resources = rows.map((g) => {
      const view = this.groupView(g, base);
      if (excluded.includes('members')) delete view.members;
      return view;
    });
    return {
      schemas: [SCIM_LIST],
      totalResults: total,
      startIndex,
      itemsPerPage: resources.length,
      Resources: resources,
    };
  }

  async getUser(dir: DirectoryRecord, id: string): Promise<ScimUserRecord> {
    const u = await this.deps.store.scim.user(dir.id, id);
    if (u === undefined) throw new BatonError('SCIM_RESOURCE_UNKNOWN', `No User "${id}" in this directory`);
    return u;
  }

  async getGroup(dir: DirectoryRecord, id: string): Promise<ScimGroupRecord> {
    const g = await this.deps.store.scim.group(dir.id, id);
    if (g === undefined) throw new BatonError('SCIM_RESOURCE_UNKNOWN', `No Group "${id}" in this directory`);
    return g;
  }

  async createUser(dir: DirectoryRecord, body: unknown): Promise<ScimUserRecord> {
    const input = canonicalUser(asObject(body, 'A User'), 'A User');
    const userName = optString(input.userName, 'userName');
    if (userName === null || userName.trim() === '') throw invalid('userName is required');
    const externalId = optString(input.externalId, 'externalId');
    const active = input.active === undefined ? true : asBoolean(input.active, 'active');
    const resource = resourceOf(input);
    checkUserResource(resource);
    const now = this.deps.clock();
    const operator = newOperator(displayNameOf(userName, resource), now);
    const record: ScimUserRecord = {
      id: newId('scu'),
      directoryId: dir.id,
      operatorId: operator.id,
      userName,
      externalId,
      active,
      resource,
      version: 1,
      createdAt: now,
      updatedAt: now,
    };
    // New rows only (the unique index on the directory's userNames decides a race between nodes).
    await this.deps.events.atomically(async (uow) => {
      if ((await uow.store.scim.userByName(dir.id, userName)) !== undefined) {
        throw new BatonError('SCIM_UNIQUENESS', `A User with userName "${userName}" already exists in this directory`);
      }
      await uow.store.operators.insert(operator);
      await uow.record({
        type: 'operator-created',
        subject: { operator: operator.id },
        outcome: 'success',
        reasons: ['scim-provisioned'],
        detail: { actor: `scim:${dir.id}`, roles: '' },
      });
      if (!(await uow.store.scim.insertUser(record))) {
        throw new BatonError('SCIM_UNIQUENESS', `A User with userName "${userName}" already exists in this directory`);
      }
      await this.recordChange(uow, dir, 'user-created', record);
    });
    // Revoked after the commit (the revocation is a unit of its own): if it fails, the User is stored
    // inactive, and the directory's retry (a PATCH or PUT with active false) revokes the operator still live.
    if (!active) await this.revokeIfLive(dir, record.operatorId, 'created inactive');
    return record;
  }

  /** PUT: the User as the directory now has it (attributes left out are cleared; `active` left out stays). */
  async replaceUser(dir: DirectoryRecord, id: string, body: unknown): Promise<ScimUserRecord> {
    const input = canonicalUser(asObject(body, 'A User'), 'A User');
    if (input.id !== undefined && input.id !== id) throw new BatonError('SCIM_MUTABILITY', 'id cannot be changed');
    return this.changeUser(dir, id, 'user-replaced', (current) => {
      const userName = optString(input.userName, 'userName');
      if (userName === null || userName.trim() === '') throw invalid('userName is required');
      const resource = resourceOf(input);
      checkUserResource(resource);
      return {
        userName,
        externalId: optString(input.externalId, 'externalId'),
        active: input.active === undefined ? current.active : asBoolean(input.active, 'active'),
        resource,
      };
    });
  }

  async patchUser(dir: DirectoryRecord, id: string, body: unknown): Promise<ScimUserRecord> {
    const ops = parsePatch(body);
    return this.changeUser(dir, id, 'user-patched', (current) => {
      const state: UserState = {
        userName: current.userName,
        externalId: current.externalId,
        active: current.active,
        resource: structuredClone(current.resource),
      };
      applyUserPatch(state, current.id, ops, current.resource);
      return state;
    });
  }

  async deleteUser(dir: DirectoryRecord, id: string): Promise<void> {
    // The operator goes first: a failure leaves the User in place for the directory's retry. The delete
    // then checks, on the User locked, that it still names the operator revoked: a User enabled again
    // meanwhile has a new operator, which is revoked before the User goes (no operator is left live
    // without a User the directory could revoke it through).
    // A Group changed meanwhile (its version-checked write missed) undoes the unit, which runs again
    // from fresh reads: the User never goes while a Group still lists it.
    const groupBusy = () => new BatonError('BACKEND_BUSY', 'A Group of the User changed meanwhile; retry');
    for (let attempt = 1; ; attempt++) {
      const user = await this.getUser(dir, id);
      await this.revokeIfLive(dir, user.operatorId, 'deleted');
      let deleted: boolean;
      try {
        deleted = await this.deps.events.atomically(async (uow) => {
          const fresh = await uow.store.scim.userForUpdate(dir.id, id);
          if (fresh === undefined) throw new BatonError('SCIM_RESOURCE_UNKNOWN', `No User "${id}" in this directory`);
          if (fresh.operatorId !== user.operatorId) return false;
          if (!(await uow.store.scim.deleteUser(dir.id, id)))
            throw new BatonError('SCIM_RESOURCE_UNKNOWN', `No User "${id}" in this directory`);
          for (const g of await uow.store.scim.allGroups(dir.id)) {
            if (!g.members.includes(id)) continue;
            const written = await uow.store.scim.updateGroup({
              ...g,
              members: g.members.filter((m) => m !== id),
              version: g.version + 1,
              updatedAt: this.deps.clock(),
            });
            if (!written) throw groupBusy();
          }
          await this.recordChange(uow, dir, 'user-deleted', fresh);
          return true;
        });
      } catch (error) {
        if (!(error instanceof BatonError && error.code === 'BACKEND_BUSY') || attempt >= 3) throw error;
        continue;
      }
      if (deleted) return;
      if (attempt >= 3) throw new BatonError('BACKEND_BUSY', 'The User changed meanwhile; retry');
    }
  }

  /**
   * One User change as one unit of work: the User is read locked inside the unit (PostgreSQL; SQLite
   * serialises writing units), the change is built from that read, written, and the operator's roles
   * synced. An operator to revoke (deactivation) is revoked right after the commit, through the
   * revocation path (its own unit of work): a write that fails revokes nothing, and a revocation that
   * fails leaves the User inactive in SCIM with its operator still live, which the directory's retry of
   * the deactivation (the User already inactive) revokes.
   */
  private async changeUser(
    dir: DirectoryRecord,
    id: string,
    op: string,
    change: (current: ScimUserRecord) => UserState,
  ): Promise<ScimUserRecord> {
    // Lock order (repositories.ts): the User row, the directory's role lock and the operator rows
    // (syncOperators), a new operator, then the backend chain head, which the first event takes.
    const { record, previous } = await this.deps.events.atomically(async (uow) => {
      const fresh = await uow.store.scim.userForUpdate(dir.id, id);
      if (fresh === undefined) throw new BatonError('SCIM_RESOURCE_UNKNOWN', `No User "${id}" in this directory`);
      const next = change(fresh);
      if (next.userName.trim() === '') throw invalid('userName is required');
      if (next.userName.toLowerCase() !== fresh.userName.toLowerCase()) {
        const other = await uow.store.scim.userByName(dir.id, next.userName);
        if (other !== undefined && other.id !== id) {
          throw new BatonError(
            'SCIM_UNIQUENESS',
            `A User with userName "${next.userName}" already exists in this directory`,
          );
        }
      }
      const now = this.deps.clock();
      let created: OperatorRecord | undefined;
      if (!fresh.active && next.active) {
        // A revocation is final: a user enabled again becomes a new operator, who enrols a passkey again.
        created = newOperator(displayNameOf(next.userName, next.resource), now);
        await uow.store.operators.insert(created);
      }
      const operatorId = created?.id ?? fresh.operatorId;
      const saved: ScimUserRecord = { ...fresh, ...next, operatorId, version: fresh.version + 1, updatedAt: now };
      if (!(await uow.store.scim.updateUser(saved))) {
        throw new BatonError('BACKEND_BUSY', 'The User changed meanwhile; retry');
      }
      await this.syncOperators(uow, dir, [saved]);
      if (created !== undefined) {
        await uow.record({
          type: 'operator-created',
          subject: { operator: created.id },
          outcome: 'success',
          reasons: ['scim-provisioned'],
          detail: { actor: `scim:${dir.id}`, roles: '', previous: fresh.operatorId },
        });
      }
      await this.recordChange(
        uow,
        dir,
        created !== undefined ? 'user-reactivated' : !next.active && fresh.active ? 'user-deactivated' : op,
        saved,
      );
      return { record: saved, previous: fresh };
    });
    // After the commit: an inactive User's operator (a deactivation, or its retry when the revocation
    // failed before), and the operator a User enabled again replaced (if its revocation had failed).
    if (!record.active) await this.revokeIfLive(dir, record.operatorId, 'deactivated');
    if (record.operatorId !== previous.operatorId) await this.revokeIfLive(dir, previous.operatorId, 'deactivated');
    return record;
  }

  async createGroup(dir: DirectoryRecord, body: unknown): Promise<ScimGroupRecord> {
    const input = canonical(asObject(body, 'A Group'), GROUP_NAMES, 'A Group');
    const displayName = optString(input.displayName, 'displayName');
    if (displayName === null || displayName.trim() === '') throw invalid('displayName is required');
    const now = this.deps.clock();
    const record: ScimGroupRecord = {
      id: newId('scg'),
      directoryId: dir.id,
      displayName,
      externalId: optString(input.externalId, 'externalId'),
      members: input.members === undefined ? [] : [...new Set(membersOf(input.members))],
      version: 1,
      createdAt: now,
      updatedAt: now,
    };
    await this.deps.events.atomically(async (uow) => {
      await this.assertMembers(uow, dir, record.members);
      if (!(await uow.store.scim.insertGroup(record))) {
        throw new BatonError('SCIM_UNIQUENESS', `A Group "${displayName}" already exists in this directory`);
      }
      await this.syncMembers(uow, dir, record.members);
      await this.recordGroupChange(uow, dir, 'group-created', record);
    });
    return record;
  }

  async replaceGroup(dir: DirectoryRecord, id: string, body: unknown): Promise<ScimGroupRecord> {
    const input = canonical(asObject(body, 'A Group'), GROUP_NAMES, 'A Group');
    if (input.id !== undefined && input.id !== id) throw new BatonError('SCIM_MUTABILITY', 'id cannot be changed');
    return this.changeGroup(dir, id, 'group-replaced', () => {
      const displayName = optString(input.displayName, 'displayName');
      if (displayName === null || displayName.trim() === '') throw invalid('displayName is required');
      return {
        displayName,
        externalId: optString(input.externalId, 'externalId'),
        members: input.members === undefined ? [] : [...new Set(membersOf(input.members))],
      };
    });
  }

  async patchGroup(dir: DirectoryRecord, id: string, body: unknown): Promise<ScimGroupRecord> {
    const ops = parsePatch(body);
    return this.changeGroup(dir, id, 'group-patched', (g) => {
      const next = { displayName: g.displayName, externalId: g.externalId, members: [...g.members] };
      const apply = (op: string, path: string, value: unknown) => {
        const p = parsePath(path, GROUP_CORE_PREFIX);
        const attr = p.attribute.toLowerCase();
        // RFC 7644 §3.5.2: a Group has no extension; id, meta and schemas are read-only, and a member is
        // kept as its value alone (a sub-attribute path such as members.display would replace the members).
        if (p.extension !== undefined) throw badPath(path, `a Group has no schema "${p.extension.slice(0, 200)}"`);
        if (attr === 'id' || attr === 'meta' || attr === 'schemas') throw readOnly(`"${p.attribute}"`);
        if (attr === 'members') {
          if (p.sub !== undefined) throw badPath(path, 'a member is changed as a whole ({"value": "<User id>"})');
          if (p.filter !== undefined) {
            if (op !== 'remove' || p.filter.attribute.toLowerCase() !== 'value')
              throw new BatonError('SCIM_INVALID_PATH', `Unsupported PATCH path "${path}"`);
            next.members = next.members.filter((m) => m !== p.filter?.value);
          } else if (op === 'remove') {
            // Entra: remove with the members listed in value; without a value, every member.
            const gone = value === undefined ? new Set(next.members) : new Set(membersOf(value));
            next.members = next.members.filter((m) => !gone.has(m));
          } else if (op === 'add') next.members = [...new Set([...next.members, ...membersOf(value)])];
          else next.members = [...new Set(membersOf(value))];
        } else if (attr === 'displayname' && p.filter === undefined && p.sub === undefined) {
          if (op === 'remove') throw invalid('displayName is required');
          const v = optString(value, 'displayName');
          if (v === null || v.trim() === '') throw invalid('displayName is required');
          next.displayName = v;
        } else if (attr === 'externalid' && p.filter === undefined && p.sub === undefined) {
          next.externalId = op === 'remove' ? null : optString(value, 'externalId');
        } else {
          throw new BatonError('SCIM_INVALID_PATH', `Unsupported PATCH path "${path}" on a Group`);
        }
      };
      for (const { op, path, value } of ops) {
        if (path !== undefined && path !== '') {
          apply(op, path, value);
          continue;
        }
        if (op === 'remove') throw new BatonError('SCIM_INVALID_PATH', 'remove needs a path');
        // Okta: {"op":"replace","value":{"id":"…","displayName":"…"}}.
        for (const [k, v] of Object.entries(asObject(value, 'value'))) {
          if (k.toLowerCase() === 'id' && v === g.id) continue;
          if (k.toLowerCase() === 'schemas' || k.toLowerCase() === 'meta') continue;
          apply(op, k, v);
        }
      }
      return next;
    });
  }

  async deleteGroup(dir: DirectoryRecord, id: string): Promise<void> {
    await this.deps.events.atomically(async (uow) => {
      const g = await uow.store.scim.group(dir.id, id);
      if (g === undefined || !(await uow.store.scim.deleteGroup(dir.id, id))) {
        throw new BatonError('SCIM_RESOURCE_UNKNOWN', `No Group "${id}" in this directory`);
      }
      await this.syncMembers(uow, dir, g.members);
      await this.recordGroupChange(uow, dir, 'group-deleted', g);
    });
  }

  private async changeGroup(
    dir: DirectoryRecord,
    id: string,
    op: string,
    change: (current: ScimGroupRecord) => { displayName: string; externalId: string | null; members: string[] },
  ): Promise<ScimGroupRecord> {
    let saved: ScimGroupRecord | undefined;
    await this.deps.events.atomically(async (uow) => {
      const current = await uow.store.scim.group(dir.id, id);
      if (current === undefined) throw new BatonError('SCIM_RESOURCE_UNKNOWN', `No Group "${id}" in this directory`);
      const next = change(current);
      await this.assertMembers(uow, dir, next.members);
      if (next.displayName.toLowerCase() !== current.displayName.toLowerCase()) {
        const other = await uow.store.scim.groupByName(dir.id, next.displayName);
        if (other !== undefined && other.id !== id)
          throw new BatonError('SCIM_UNIQUENESS', `A Group "${next.displayName}" already exists in this directory`);
      }
      const record: ScimGroupRecord = {
        ...current,
        ...next,
        version: current.version + 1,
        updatedAt: this.deps.clock(),
      };
      if (!(await uow.store.scim.updateGroup(record)))
        throw new BatonError('BACKEND_BUSY', 'The Group changed meanwhile; retry');
      await this.syncMembers(uow, dir, [...new Set([...current.members, ...record.members])]);
      await this.recordGroupChange(uow, dir, op, record);
      saved = record;
    });
    if (saved === undefined) throw new Error('unreachable');
    return saved;
  }

  private async assertMembers(uow: UnitOfWork, dir: DirectoryRecord, members: string[]): Promise<void> {
    for (const m of members) {
      if ((await uow.store.scim.user(dir.id, m)) === undefined)
        throw invalid(`The member "${m}" is not a User of this directory`);
    }
  }

  private async syncMembers(uow: UnitOfWork, dir: DirectoryRecord, userIds: string[]): Promise<void> {
    const users: ScimUserRecord[] = [];
    for (const id of userIds) {
      const u = await uow.store.scim.user(dir.id, id);
      if (u !== undefined) users.push(u);
    }
    await this.syncOperators(uow, dir, users);
  }

  /** Gives each user's operator the name the directory has and the roles its groups map to. */
  private async syncOperators(uow: UnitOfWork, dir: DirectoryRecord, users: ScimUserRecord[]): Promise<void> {
    if (users.length === 0) return;
    // One computation at a time per directory, each reading the groups (and the mapping) the one before
    // it committed: two concurrent group changes would otherwise each write roles from a read that
    // misses the other's change, and the last commit would win.
    await uow.store.scim.lockRoles(dir.id);
    const groupRoles = (await uow.store.scim.directory(dir.id))?.groupRoles ?? dir.groupRoles;
    const groups = await uow.store.scim.allGroups(dir.id);
    const mapping = new Map(Object.entries(groupRoles).map(([name, roles]) => [name.toLowerCase(), roles]));
    const changes: { user: ScimUserRecord; name: string; roles: string[]; losesAdmin: boolean }[] = [];
    for (const given of users) {
      // The User as committed now, read after the lock: a User enabled again meanwhile (a User change
      // takes this lock after its User row) names its new operator, which gets the roles, not the old one.
      const u = await uow.store.scim.user(dir.id, given.id);
      if (u === undefined) continue;
      const roles = new Set<string>();
      for (const g of groups) {
        if (g.members.includes(u.id)) for (const r of mapping.get(g.displayName.toLowerCase()) ?? []) roles.add(r);
      }
      const operator = await uow.store.operators.get(u.operatorId);
      if (operator === undefined) continue;
      const name = displayNameOf(u.userName, u.resource);
      const sorted = [...roles].sort();
      if (operator.displayName === name && JSON.stringify([...operator.roles].sort()) === JSON.stringify(sorted)) {
        continue;
      }
      await uow.store.scim.updateOperator(u.operatorId, name, sorted);
      const losesAdmin = operator.roles.includes('admin') && !roles.has('admin');
      changes.push({ user: u, name, roles: sorted, losesAdmin });
    }
    // Every operator row first, then the events (which take the backend chain head): the lock order.
    for (const { user, name, roles, losesAdmin } of changes) {
      await uow.record({
        type: 'scim-provisioning',
        subject: { operator: user.operatorId },
        outcome: 'success',
        reasons: ['operator-updated'],
        detail: {
          directory: dir.id,
          directoryName: dir.name,
          scimId: user.id,
          roles: roles.join(' '),
          displayName: name,
        },
      });
      // Requests are refused from the commit on (the role is read on each); the sessions end with it,
      // so their live streams close on every node too. Admin sessions come after the head in the lock order.
      if (losesAdmin) await this.deps.adminSessions?.endOperatorSessionsIn(uow, user.operatorId, 'admin-role-removed');
    }
  }

  /** Revokes the operator through the revocation path (pushed to every console) unless it is revoked already. */
  private async revokeIfLive(dir: DirectoryRecord, operatorId: string, why: string): Promise<void> {
    const operator = await this.deps.store.operators.get(operatorId);
    if (operator === undefined || operator.revokedAt !== null) return;
    try {
      await this.deps.revocations.revoke(
        'operator',
        operatorId,
        `${why} in directory ${dir.name}`.slice(0, 300),
        `scim:${dir.id}`,
      );
    } catch (error) {
      if (error instanceof BatonError && error.code === 'OPERATOR_REVOKED') return;
      throw error;
    }
  }

  private recordChange(uow: UnitOfWork, dir: DirectoryRecord, op: string, u: ScimUserRecord) {
    return uow.record({
      type: 'scim-provisioning',
      subject: { operator: u.operatorId },
      outcome: 'success',
      reasons: [op],
      detail: {
        directory: dir.id,
        directoryName: dir.name,
        scimId: u.id,
        userName: u.userName.slice(0, 256),
        externalId: u.externalId?.slice(0, 256) ?? null,
        active: u.active,
      },
    });
  }

  private recordGroupChange(uow: UnitOfWork, dir: DirectoryRecord, op: string, g: ScimGroupRecord) {
    return uow.record({
      type: 'scim-provisioning',
      subject: {},
      outcome: 'success',
      reasons: [op],
      detail: {
        directory: dir.id,
        directoryName: dir.name,
        scimId: g.id,
        group: g.displayName.slice(0, 256),
        members: g.members.length,
      },
    });
  }
}

function newOperator(displayName: string, now: number): OperatorRecord {
  return {
    id: newId('op'),
    displayName,
    roles: [],
    webauthnUserId: randomBytes(32).toString('base64url'),
    createdAt: now,
    failedAttempts: 0,
    revokedAt: null,
    revokedReason: null,
  };
}
