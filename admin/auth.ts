import { startAuthentication, startRegistration } from '@simplewebauthn/browser';
import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/browser';
import { ApiError, api, endpoint } from './api.js';
import { describeError, h, replace } from './dom.js';
import { oneTimeSecret } from './one-time-secret.js';

export interface AdminSession {
  admin: { operatorId: string; displayName: string };
  session: { id: string; createdAt: number; expiresAt: number; idleExpiresAt: number; stepUpUntil: number | null };
}

/**
 * What went wrong in a passkey ceremony, for the admin: the browser's refusal in plain words (it
 * never says why a passkey was not used, on purpose), never a library's internal code or a link.
 */
export function describeCeremonyError(error: unknown): string {
  if (error instanceof ApiError) return describeError(error);
  const name = error instanceof Error ? error.name : '';
  const code = error instanceof Error && 'code' in error ? String(error.code) : '';
  if (name === 'AbortError' || code === 'ERROR_CEREMONY_ABORTED') return 'It was cancelled.';
  if (name === 'NotAllowedError') {
    return 'No passkey was used: the request was cancelled or timed out, or this authenticator holds no passkey for this admin console. Try again, or register a passkey with an enrolment code.';
  }
  if (name === 'InvalidStateError') return 'This authenticator already holds a passkey for this admin console.';
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s*See:?\s*https?:\/\/\S+/g, '').trim() || 'The passkey could not be used.';
}

/** Sign in with a passkey (usernameless, user verification required). */
export function signInView(main: HTMLElement, onSignedIn: (s: AdminSession) => void, notice?: string): void {
  const message = h('div', { 'aria-live': 'assertive' });
  const button = h('button', { class: 'primary', type: 'button', id: 'sign-in' }, 'Sign in with a passkey');
  button.addEventListener('click', () => {
    button.disabled = true;
    replace(message, h('p', { class: 'muted' }, 'Waiting for your passkey…'));
    void (async () => {
      try {
        const { options } = await api<{ options: PublicKeyCredentialRequestOptionsJSON }>(
          ...endpoint('adminSignInOptions'),
          {},
        );
        const response = await startAuthentication({ optionsJSON: options });
        onSignedIn(await api<AdminSession>(...endpoint('adminSignInVerify'), { response }));
      } catch (error) {
        replace(
          message,
          h('div', { class: 'error', role: 'alert' }, `Sign-in failed. ${describeCeremonyError(error)}`),
        );
        button.disabled = false;
      }
    })();
  });
  replace(
    main,
    h(
      'div',
      { class: 'signin' },
      h('h1', {}, 'Sign in to the Baton admin console'),
      notice === undefined ? null : h('p', { class: 'error', role: 'alert' }, notice),
      h('p', {}, 'Admins sign in with their own passkey and user verification (PIN or biometric).'),
      button,
      message,
      h(
        'p',
        { class: 'muted' },
        'First admin, or a new admin passkey? ',
        h('a', { href: '#/register' }, 'Register a passkey with an enrolment code'),
        '.',
      ),
    ),
  );
  button.focus();
}

/** Registers an admin passkey with the one-time enrolment code the bootstrap step (or another admin) issued. */
export function registerView(main: HTMLElement, onSignedIn: (s: AdminSession) => void): void {
  const message = h('div', { 'aria-live': 'assertive' });
  const code = h('input', {
    id: 'enrolment-code',
    name: 'code',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'ABCD-EFGH-JKLM-NPQR',
    required: true,
  });
  const form = h(
    'form',
    {},
    h('label', { for: 'enrolment-code' }, 'Enrolment code', code),
    h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit' }, 'Register passkey')),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    replace(message, h('p', { class: 'muted' }, 'Waiting for your authenticator…'));
    void (async () => {
      try {
        const { options } = await api<{ options: PublicKeyCredentialCreationOptionsJSON }>(
          ...endpoint('adminRegisterOptions'),
          { code: code.value },
        );
        const response = await startRegistration({ optionsJSON: options });
        onSignedIn(await api<AdminSession>(...endpoint('adminRegisterVerify'), { code: code.value, response }));
      } catch (error) {
        replace(
          message,
          h('div', { class: 'error', role: 'alert' }, `Registration failed. ${describeCeremonyError(error)}`),
        );
      }
    })();
  });
  replace(
    main,
    h(
      'div',
      { class: 'signin' },
      h('h1', {}, 'Register your admin passkey'),
      h(
        'p',
        {},
        'Type the one-time enrolment code you were given. Your authenticator must be device-bound and verify you (PIN or biometric).',
      ),
      form,
      message,
      h('p', {}, h('a', { href: '#/' }, 'Back to sign-in')),
    ),
  );
  code.focus();
}

/**
 * Step-up before a destructive action: a dialog says what is being confirmed, then a fresh
 * user-verified assertion with one of this admin's passkeys. Resolves false when cancelled or failed.
 */
export function confirmWithPasskey(): Promise<boolean> {
  return new Promise((resolve) => {
    const message = h('div', { 'aria-live': 'assertive' });
    const confirm = h('button', { class: 'primary', type: 'button', id: 'step-up-confirm' }, 'Confirm with passkey');
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const dialog = h(
      'dialog',
      { 'aria-labelledby': 'step-up-title', id: 'step-up-dialog' },
      h('h2', { id: 'step-up-title' }, 'Confirm it is you'),
      h(
        'p',
        {},
        'This action cannot be undone. Confirm with your passkey and user verification; the confirmation is good for 5 minutes.',
      ),
      message,
      h('div', { class: 'row' }, confirm, cancel),
    );
    const finish = (ok: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(ok);
    };
    cancel.addEventListener('click', () => finish(false));
    dialog.addEventListener('cancel', () => finish(false));
    confirm.addEventListener('click', () => {
      confirm.disabled = true;
      void (async () => {
        try {
          const { options } = await api<{ options: PublicKeyCredentialRequestOptionsJSON }>(
            ...endpoint('adminStepUpOptions'),
            {},
          );
          const response = await startAuthentication({ optionsJSON: options });
          await api(...endpoint('adminStepUpVerify'), { response });
          finish(true);
        } catch (error) {
          replace(
            message,
            h('div', { class: 'error', role: 'alert' }, `Not confirmed. ${describeCeremonyError(error)}`),
          );
          confirm.disabled = false;
        }
      })();
    });
    document.body.append(dialog);
    dialog.showModal();
    confirm.focus();
  });
}

/**
 * First-run setup, when no admin has a passkey yet: the bootstrap token `npm start` printed (and
 * wrote to the data directory) creates the first admin, who registers their passkey at once and is
 * signed in. The same two routes as the README's curl: `POST /v1/admin/bootstrap`, then the
 * passkey registration with the one-time code it returned. The token is sent once and never kept.
 */
export function setupView(main: HTMLElement, onSignedIn: (s: AdminSession) => void): void {
  const message = h('div', { 'aria-live': 'assertive', id: 'setup-message' });
  const token = h('input', {
    id: 'setup-token',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
  });
  const name = h('input', { id: 'setup-name', required: true, maxlength: 100, autocomplete: 'name' });
  const adminId = h('input', { id: 'setup-id', maxlength: 128, placeholder: 'optional, e.g. grace' });
  const submit = h(
    'button',
    { class: 'primary', type: 'submit', id: 'setup-submit' },
    'Create admin and register passkey',
  );
  /** The code minted by the first try: a retry (after a cancelled passkey prompt) registers with it. */
  let code: string | undefined;
  let expiresAt = 0;
  let registerAt = '';
  const elsewhere = h(
    'button',
    { type: 'button', id: 'setup-elsewhere' },
    'Create admin, show the code for another computer',
  );
  const create = async () => {
    const created = await api<{ code: string; expiresAt: number; registerAt: string }>(
      ...endpoint('adminBootstrap'),
      { displayName: name.value.trim(), ...(adminId.value.trim() === '' ? {} : { id: adminId.value.trim() }) },
      { bearer: token.value.trim() },
    );
    ({ code, expiresAt, registerAt } = created);
    token.value = '';
    for (const input of [token, name, adminId]) input.disabled = true;
    elsewhere.disabled = true;
  };
  const refused = (error: unknown): string =>
    error instanceof ApiError && (error.code === 'ADMIN_AUTH_INVALID' || error.code === 'ADMIN_AUTH_REQUIRED')
      ? 'The bootstrap token was not accepted: copy it again from the bootstrap-admin-token file in the data directory.'
      : error instanceof ApiError && error.code === 'ADMIN_BOOTSTRAP_DISABLED'
        ? 'An admin already exists, so the bootstrap token is retired: sign in, or ask an admin for an enrolment code.'
        : describeCeremonyError(error);
  /** The admin's security key is on another computer: the one-time code, to register there. */
  const showCode = () => {
    if (code === undefined) return;
    replace(
      message,
      oneTimeSecret({
        title: `Admin enrolment code for ${name.value.trim()}`,
        value: code,
        expiresAt,
        id: 'setup-code',
        instructions: `On the computer with the security key, open ${registerAt}, type this code and touch the key.`,
      }),
      h('p', {}, h('a', { href: '#/register' }, 'Or register a passkey with it on this computer'), '.'),
    );
  };
  elsewhere.addEventListener('click', () => {
    if (!form.reportValidity()) return;
    elsewhere.disabled = true;
    void create().then(showCode, (error: unknown) => {
      replace(message, h('div', { class: 'error', role: 'alert' }, `Setup failed. ${refused(error)}`));
      elsewhere.disabled = false;
    });
  });
  const form = h(
    'form',
    { 'aria-label': 'Create the first admin' },
    h('label', { for: 'setup-token' }, 'Bootstrap token (from the data directory’s bootstrap-admin-token file)', token),
    h('label', { for: 'setup-name' }, 'Your name', name),
    h('label', { for: 'setup-id' }, 'Your admin id', adminId),
    h('div', { class: 'row' }, submit, elsewhere),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(
      message,
      h('p', { class: 'muted' }, code === undefined ? 'Creating the admin…' : 'Waiting for your authenticator…'),
    );
    void (async () => {
      try {
        if (code === undefined) {
          await create();
          replace(message, h('p', { class: 'muted' }, 'Admin created. Waiting for your authenticator…'));
        }
        const { options } = await api<{ options: PublicKeyCredentialCreationOptionsJSON }>(
          ...endpoint('adminRegisterOptions'),
          { code },
        );
        const response = await startRegistration({ optionsJSON: options });
        onSignedIn(await api<AdminSession>(...endpoint('adminRegisterVerify'), { code, response }));
      } catch (error) {
        const why = refused(error);
        const alert = h(
          'div',
          { class: 'error', role: 'alert' },
          code === undefined ? `Setup failed. ${why}` : `The admin was created but no passkey was registered. ${why}`,
        );
        // Once created, the code is what registers the admin: here again, or on another computer.
        showCode();
        if (code === undefined) replace(message, alert);
        else message.prepend(alert);
        submit.textContent = code === undefined ? 'Create admin and register passkey' : 'Register passkey again';
        submit.disabled = false;
      }
    })();
  });
  replace(
    main,
    h(
      'div',
      { class: 'signin' },
      h('h1', {}, 'Set up the Baton admin console'),
      h(
        'p',
        {},
        'No admin exists yet. Create the first admin with the bootstrap token the backend printed when it first started, ',
        'then register your passkey (device-bound, with PIN or biometric). From then on the token is retired and admins sign in with passkeys.',
      ),
      form,
      message,
      h(
        'p',
        { class: 'muted' },
        'Were you given an enrolment code instead? ',
        h('a', { href: '#/register' }, 'Register a passkey with it'),
        '.',
      ),
    ),
  );
  token.focus();
}
