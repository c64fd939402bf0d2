import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ROUTES, ROUTE_IDS, matchRoute, routePath, type RouteId } from '../../shared/routes.js';
import { adminAssetRoutes } from './admin-assets.js';
import { adminAuthRoutes, type AdminAuthRouteDeps } from './admin-auth-routes.js';
import { adminConsoleRoutes, type AdminConsoleRouteDeps } from './admin-console-routes.js';
import { adminRoutes, type AdminRouteDeps } from './admin-routes.js';
import { authenticatorMetadataRoutes, type AuthenticatorMetadataRouteDeps } from './authenticator-metadata-routes.js';
import { consoleRoutes, type ConsoleRouteDeps } from './console-routes.js';
import { Router } from './router.js';
import { ssfReceiverRoutes, type SsfReceiverRouteDeps } from '../ssf/receiver/routes.js';
import { scimRoutes, type ScimRouteDeps } from '../scim/routes.js';
import { serviceRoutes, type ServiceRouteDeps } from '../service-accounts/service-routes.js';
import { breakGlassRoutes, type BreakGlassRouteDeps } from '../break-glass/break-glass-routes.js';
import { tokenRoutes, type TokenRouteDeps } from '../tokens/token-routes.js';
import { ssfTransmitterRoutes, type SsfTransmitterRouteDeps } from '../ssf/transmitter/routes.js';
import type { SiemExporter } from '../siem/exporter.js';
import { siemRoutes } from './siem-routes.js';

/** Answered by the server itself before the router (so they work while the database is damaged). */
const SERVED_BEFORE_ROUTER: readonly RouteId[] = ['health', 'readyz', 'jwks'];

function registeredRouter(): Router {
  // Building the route lists touches none of their dependencies.
  const none = {} as ConsoleRouteDeps &
    AdminRouteDeps &
    AdminAuthRouteDeps &
    AdminConsoleRouteDeps &
    AuthenticatorMetadataRouteDeps &
    SsfReceiverRouteDeps &
    ScimRouteDeps &
    ServiceRouteDeps &
    BreakGlassRouteDeps &
    TokenRouteDeps &
    SsfTransmitterRouteDeps & { siem: SiemExporter };
  return new Router()
    .add(consoleRoutes(none))
    .add(adminRoutes(none))
    .add(adminAuthRoutes(none))
    .add(adminConsoleRoutes(none))
    .add(authenticatorMetadataRoutes(none))
    .add(ssfReceiverRoutes(none))
    .add(scimRoutes(none))
    .add(serviceRoutes(none))
    .add(breakGlassRoutes(none))
    .add(tokenRoutes(none))
    .add(ssfTransmitterRoutes(none))
    .add(siemRoutes(none))
    .add(adminAssetRoutes('/nonexistent'));
}

const API_DOC = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');

/** Every "`METHOD /path" the document names (prose, headings), and every row of its endpoint summary. */
function documentedRoutes(): Set<string> {
  const found = new Set<string>();
  for (const m of API_DOC.matchAll(/`(GET|POST|PUT|PATCH|DELETE) (\/[^`\s?]*)/g)) found.add(`${m[1]} ${m[2]}`);
  for (const m of API_DOC.matchAll(/^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*`(\/[^`?]*)`/gm))
    found.add(`${m[1]} ${m[2]}`);
  return found;
}

describe('the route table (shared/routes.ts)', () => {
  it('is what the backend serves: every route registered once, nothing registered outside it', () => {
    const registered = registeredRouter()
      .list()
      .map((r) => r.route)
      .sort();
    const expected = ROUTE_IDS.filter((id) => !SERVED_BEFORE_ROUTER.includes(id)).sort();
    assert.deepEqual(registered, expected);
  });

  it('registers each route with the access the table declares', () => {
    const router = registeredRouter();
    const { route: revoke } = router.match('POST', '/v1/admin/operators/op_1/revoke');
    assert.equal(revoke.auth, 'admin');
    assert.equal(revoke.stepUp, true);
    const { route: stream } = router.match('GET', '/v1/admin/events/stream');
    assert.equal(stream.passive, true);
    assert.equal(stream.stepUp, false);
    assert.equal(router.match('POST', '/v1/sign-in/verify').route.auth, 'console');
    assert.equal(router.match('POST', '/v1/consoles/enrol').route.auth, 'enrolment');
    assert.equal(router.match('POST', '/v1/admin/auth/sign-in/options').route.auth, 'none');
  });

  it('refuses a handler registered twice for one route', () => {
    assert.throws(
      () =>
        new Router().add([
          { route: 'health', handler: () => ({}) },
          { route: 'health', handler: () => ({}) },
        ]),
      /registered twice/,
    );
  });

  it('has no two routes with the same method and path', () => {
    const keys = ROUTE_IDS.map((id) => `${ROUTES[id].method} ${ROUTES[id].path}`);
    assert.deepEqual(
      keys.filter((k, i) => keys.indexOf(k) !== i),
      [],
    );
  });

  it('is documented: every route of the table appears in docs/api.md with its method', () => {
    const documented = documentedRoutes();
    const missing = ROUTE_IDS.map((id) => `${ROUTES[id].method} ${ROUTES[id].path}`).filter((k) => !documented.has(k));
    assert.deepEqual(missing, [], 'routes of shared/routes.ts that docs/api.md does not name');
  });

  it('documents nothing else: every method and path docs/api.md names is in the table', () => {
    const table = new Set(ROUTE_IDS.map((id) => `${ROUTES[id].method} ${ROUTES[id].path}`));
    const unknown = [...documentedRoutes()].filter((k) => !table.has(k));
    assert.deepEqual(unknown, [], 'endpoints docs/api.md names that shared/routes.ts does not declare');
  });

  it('builds paths with each parameter percent-encoded, and matches them back', () => {
    assert.equal(routePath('sessionEnd', { id: 'ses_1' }), '/v1/sessions/ses_1/end');
    assert.equal(
      routePath('adminEnrolmentCodeRevoke', { id: 'a/b', codeId: 'c d' }),
      '/v1/admin/operators/a%2Fb/enrolment-codes/c%20d/revoke',
    );
    assert.equal(
      routePath('adminSessions', {}, { state: 'active', limit: 10, after: undefined }),
      '/v1/admin/sessions?state=active&limit=10',
    );
    assert.equal(routePath('adminStats'), '/v1/admin/stats');
    assert.equal(matchRoute('POST', routePath('stepUpVerify', { id: 'ses_9' })), 'stepUpVerify');
    assert.equal(matchRoute('GET', '/v1/admin/operators/op_1'), 'adminOperator');
    assert.equal(matchRoute('DELETE', '/v1/admin/operators/op_1'), undefined);
  });
});
