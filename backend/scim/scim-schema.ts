/**
 * SCIM 2.0 constants and documents (RFC 7643, RFC 7644): schema URNs, the discovery documents
 * (ServiceProviderConfig, ResourceTypes, Schemas), the error body, the filter subset Baton supports.
 */
import { BatonError, type ErrorCode } from '../../shared/errors.js';

export const SCIM_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const SCIM_GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const SCIM_ENTERPRISE_USER = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const SCIM_LIST = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const SCIM_PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const SCIM_ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
/** Baton's own read-only extension on a User: the operator it provisioned and that operator's roles. */
export const SCIM_BATON_OPERATOR = 'urn:baton:params:scim:schemas:extension:2.0:Operator';
export const SCIM_CONTENT_TYPE = 'application/scim+json; charset=utf-8';
/** The most resources one list answers (`count` above it is lowered). */
export const SCIM_MAX_RESULTS = 200;

const SCIM_TYPE: Partial<Record<ErrorCode, string>> = {
  SCIM_INVALID_FILTER: 'invalidFilter',
  SCIM_INVALID_SYNTAX: 'invalidSyntax',
  BAD_JSON: 'invalidSyntax',
  UNSUPPORTED_MEDIA_TYPE: 'invalidSyntax',
  SCIM_INVALID_VALUE: 'invalidValue',
  SCHEMA_INVALID: 'invalidValue',
  SCIM_INVALID_PATH: 'invalidPath',
  SCIM_MUTABILITY: 'mutability',
  SCIM_UNIQUENESS: 'uniqueness',
};

/** RFC 7644 §3.12's error body, with Baton's stable code beside it. */
export function scimError(error: BatonError): { status: number; body: Record<string, unknown> } {
  const scimType = SCIM_TYPE[error.code];
  return {
    status: error.status,
    body: {
      schemas: [SCIM_ERROR],
      status: String(error.status),
      ...(scimType === undefined ? {} : { scimType }),
      detail: error.message,
      error: { code: error.code, message: error.message },
    },
  };
}

/**
 * The filters Baton answers: `<attribute> eq "<value>"` on the attributes identity providers look
 * resources up by (Users: userName, externalId, id; Groups: displayName, externalId, id). Attribute
 * names and the operator are case-insensitive (RFC 7644 §3.4.2.2). Anything else is refused with
 * invalidFilter rather than answered wrongly.
 */
export function parseFilter(
  filter: string | null,
  allowed: readonly ('userName' | 'externalId' | 'displayName' | 'id')[],
): { attribute: 'userName' | 'externalId' | 'displayName' | 'id'; value: string } | undefined {
  if (filter === null || filter.trim() === '') return undefined;
  const m = /^\s*([A-Za-z][\w.:-]*)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$/i.exec(filter);
  if (m === null) {
    throw new BatonError(
      'SCIM_INVALID_FILTER',
      `Unsupported filter "${filter.slice(0, 200)}": only <attribute> eq "<value>" is supported`,
    );
  }
  const name = (m[1] ?? '').replace(/^urn:ietf:params:scim:schemas:core:2\.0:(User|Group):/i, '');
  const attribute = allowed.find((a) => a.toLowerCase() === name.toLowerCase());
  if (attribute === undefined) {
    throw new BatonError('SCIM_INVALID_FILTER', `Filtering by "${name}" is not supported; use ${allowed.join(', ')}`);
  }
  let value: string;
  try {
    value = JSON.parse(`"${m[2] ?? ''}"`) as string;
  } catch {
    throw new BatonError('SCIM_INVALID_FILTER', 'The filter value is not a valid string');
  }
  return { attribute, value };
}

export function serviceProviderConfig(base: string) {
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
    documentationUri: 'https://github.com/baton/baton/blob/main/docs/scim.md',
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults: SCIM_MAX_RESULTS },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: false },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'OAuth Bearer Token',
        description: 'The bearer token a Baton admin issued for this directory (POST /v1/admin/scim/directories)',
        primary: true,
      },
    ],
    meta: { resourceType: 'ServiceProviderConfig', location: `${base}/ServiceProviderConfig` },
  };
}

export function resourceTypes(base: string) {
  return [
    {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ResourceType'],
      id: 'User',
      name: 'User',
      endpoint: '/Users',
      description: 'A Baton operator',
      schema: SCIM_USER,
      schemaExtensions: [
        { schema: SCIM_ENTERPRISE_USER, required: false },
        { schema: SCIM_BATON_OPERATOR, required: false },
      ],
      meta: { resourceType: 'ResourceType', location: `${base}/ResourceTypes/User` },
    },
    {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ResourceType'],
      id: 'Group',
      name: 'Group',
      endpoint: '/Groups',
      description: 'A directory group; its members get the Baton roles mapped to it',
      schema: SCIM_GROUP,
      meta: { resourceType: 'ResourceType', location: `${base}/ResourceTypes/Group` },
    },
  ];
}

const attr = (name: string, type: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  name,
  type,
  multiValued: false,
  required: false,
  caseExact: false,
  mutability: 'readWrite',
  returned: 'default',
  uniqueness: 'none',
  ...extra,
});

export function schemas(base: string) {
  return [
    {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:Schema'],
      id: SCIM_USER,
      name: 'User',
      description: 'A Baton operator',
      attributes: [
        attr('userName', 'string', { required: true, uniqueness: 'server' }),
        attr('name', 'complex', {
          subAttributes: ['formatted', 'familyName', 'givenName', 'middleName'].map((n) => attr(n, 'string')),
        }),
        attr('displayName', 'string'),
        attr('active', 'boolean'),
        attr('emails', 'complex', {
          multiValued: true,
          subAttributes: [attr('value', 'string'), attr('type', 'string'), attr('primary', 'boolean')],
        }),
        attr('externalId', 'string', { caseExact: true }),
      ],
      meta: { resourceType: 'Schema', location: `${base}/Schemas/${SCIM_USER}` },
    },
    {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:Schema'],
      id: SCIM_GROUP,
      name: 'Group',
      description: 'A directory group',
      attributes: [
        attr('displayName', 'string', { required: true, uniqueness: 'server' }),
        attr('members', 'complex', {
          multiValued: true,
          subAttributes: [attr('value', 'string', { mutability: 'immutable' }), attr('display', 'string')],
        }),
        attr('externalId', 'string', { caseExact: true }),
      ],
      meta: { resourceType: 'Schema', location: `${base}/Schemas/${SCIM_GROUP}` },
    },
    {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:Schema'],
      id: SCIM_BATON_OPERATOR,
      name: 'BatonOperator',
      description: 'The Baton operator a User provisioned (read-only)',
      attributes: [
        attr('operatorId', 'string', { mutability: 'readOnly', caseExact: true }),
        attr('roles', 'string', { mutability: 'readOnly', multiValued: true }),
      ],
      meta: { resourceType: 'Schema', location: `${base}/Schemas/${SCIM_BATON_OPERATOR}` },
    },
  ];
}
