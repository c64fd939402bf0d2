import type { SiemExporter } from '../siem/exporter.js';
import type { Route } from './router.js';

/** The SIEM export's state for the admin console: each sink's cursor, lag and last error. */
export function siemRoutes(deps: { siem: SiemExporter }): Route[] {
  return [{ route: 'adminSiem', handler: async () => ({ sinks: await deps.siem.status() }) }];
}
