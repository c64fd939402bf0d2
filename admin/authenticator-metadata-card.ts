import type {
  AuthenticatorMetadataView,
  AuthenticatorModelView,
  CertificationLevel,
} from '../shared/authenticator-metadata.js';
import { ApiError, api, endpoint } from './api.js';
import { announce, errorBox, fmtTime, h, pill, replace, table } from './dom.js';

/** `FIDO L2`, or `not certified`: how the pages name a certification level. */
export function certificationText(level: CertificationLevel): string {
  return level === 'none' ? 'not certified' : `FIDO ${level.replace('plus', '+')}`;
}

/** Statuses that say the model (or its certification) can no longer be trusted. */
const BAD_STATUSES = new Set([
  'REVOKED',
  'USER_VERIFICATION_BYPASS',
  'ATTESTATION_KEY_COMPROMISE',
  'USER_KEY_REMOTE_COMPROMISE',
  'USER_KEY_PHYSICAL_COMPROMISE',
]);

/** A model's name with its certification and, when it is one, a warning about its latest status. */
export function modelCell(model: AuthenticatorModelView, aaguid: string): HTMLElement {
  const bad = model.statusReports.find((r) => BAD_STATUSES.has(r.status));
  return h(
    'span',
    { title: `AAGUID ${aaguid}` },
    model.model,
    ' ',
    pill(certificationText(model.certification), model.certification === 'none' || bad !== undefined ? '' : 'good'),
    bad === undefined ? '' : ' ',
    bad === undefined ? '' : pill(bad.status.toLowerCase().replace(/_/g, ' '), 'bad'),
  );
}

/** Sends the BLOB file as it was downloaded from FIDO (not JSON), with the session cookie. */
async function uploadBlob(file: File): Promise<AuthenticatorMetadataView> {
  const [method, path] = endpoint('adminMetadataLoad');
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { 'content-type': 'application/jwt' },
    body: file,
  });
  const parsed = (await response.json().catch(() => ({}))) as {
    metadata?: AuthenticatorMetadataView;
    error?: { code?: string; message?: string };
  };
  if (response.ok && parsed.metadata !== undefined) return parsed.metadata;
  throw new ApiError(
    response.status,
    parsed.error?.code ?? 'UNKNOWN',
    parsed.error?.message ?? `HTTP ${response.status}`,
  );
}

/**
 * The FIDO metadata card: which BLOB is loaded (and whether it is stale), the models it names, and
 * uploading a newer BLOB file. Baton never downloads one itself.
 */
export function authenticatorMetadataCard(): HTMLElement {
  const status = h('div', { id: 'mds-status' }, h('p', { class: 'muted' }, 'Loading…'));
  const result = h('div', { id: 'mds-result' });
  const input = h('input', { id: 'mds-file', type: 'file', accept: '.jwt,.blob,application/jwt,text/plain' });
  const button = h('button', { type: 'button', id: 'mds-upload' }, 'Load BLOB');
  const load = async () => {
    try {
      const { metadata, models } = await api<{ metadata: AuthenticatorMetadataView; models: AuthenticatorModelView[] }>(
        ...endpoint('adminModels'),
      );
      replace(
        status,
        metadata.loaded
          ? h(
              'p',
              {},
              `BLOB no ${metadata.no ?? '?'} · ${metadata.models} models · next update due ${metadata.nextUpdate ?? '?'} · loaded ${fmtTime(metadata.loadedAt)} by ${metadata.loadedBy ?? '?'} `,
              metadata.stale ? pill('stale: load a newer BLOB', 'warn') : pill('current', 'good'),
            )
          : h(
              'p',
              { class: 'muted' },
              'No metadata loaded: passkeys show their AAGUID only, and certification rules cannot be met.',
            ),
        h(
          'details',
          {},
          h('summary', {}, `Models (${models.length})`),
          table(
            'Authenticator models',
            ['model', 'AAGUID', 'latest status', 'last status change'],
            models.map((m) => [
              modelCell(m, m.aaguid),
              h('span', { class: 'mono' }, m.aaguid),
              m.status,
              m.timeOfLastStatusChange ?? '—',
            ]),
            'No models.',
          ),
        ),
      );
    } catch (error) {
      replace(status, errorBox(error));
    }
  };
  button.addEventListener('click', () => {
    const file = input.files?.[0];
    if (file === undefined) {
      replace(result, h('div', { class: 'error', role: 'alert' }, 'Choose the BLOB file first (blob.jwt from FIDO).'));
      return;
    }
    void (async () => {
      try {
        const metadata = await uploadBlob(file);
        announce(`Authenticator metadata BLOB no ${metadata.no ?? '?'} loaded`);
        replace(result, h('div', { class: 'ok', role: 'status' }, `Loaded BLOB no ${metadata.no ?? '?'}.`));
        await load();
      } catch (error) {
        replace(result, errorBox(error));
      }
    })();
  });
  void load();
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'h-mds' },
    h('h2', { id: 'h-mds' }, 'Authenticator models (FIDO metadata)'),
    status,
    h('div', { class: 'row' }, h('label', { for: 'mds-file' }, 'Metadata BLOB file', input), button),
    result,
  );
}
