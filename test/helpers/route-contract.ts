import { ErrorBodySchema, ROUTES, matchRoute, type RouteId } from '../../shared/routes.js';

/** Routes whose answers a test checked against the table, and how many times (for the contract test). */
export const checkedRoutes = new Map<RouteId, number>();

/**
 * Checks one answer of the backend against the route table (shared/routes.ts): a 2xx body against
 * the route's declared response schema, a refusal against the error body every route shares. The
 * test helpers that speak HTTP call this for every answer, so an answer that drifts from its
 * declared schema fails whichever test received it. Paths outside the table (a probe of an unknown
 * endpoint) are not checked.
 */
export function checkAnswer(method: string, url: string, status: number, body: unknown): void {
  const pathname = new URL(url, 'http://backend.invalid').pathname;
  const id = matchRoute(method, pathname);
  if (id === undefined) return;
  // `/healthz` and `/readyz` answer trouble (a damaged or unreachable database, a stale node) with
  // their usual body and 503, so monitoring and load balancers see it.
  const usualBody = (status >= 200 && status < 300) || ((id === 'health' || id === 'readyz') && status === 503);
  const schema = usualBody ? ROUTES[id].response : ErrorBodySchema;
  if (schema === null || (status >= 300 && status < 400)) return;
  const result = schema.safeParse(body);
  if (!result.success) {
    const issues = result.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.')}: ${i.message}`)
      .join('; ');
    throw new Error(
      `${method} ${pathname} answered ${status} with a body that does not match its declared schema (route ${id}): ${issues}`,
    );
  }
  checkedRoutes.set(id, (checkedRoutes.get(id) ?? 0) + 1);
}
