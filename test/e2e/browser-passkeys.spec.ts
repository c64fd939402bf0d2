import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { startCeremonyServer } from '../helpers/e2e-ceremony-server.js';
import { CeremonyPage, expect, test } from '../helpers/e2e-fixtures.js';

/**
 * Real passkey ceremonies in Debian's Chromium with a CDP virtual authenticator, against the real
 * backend over HTTP. The page only runs the browser half of each ceremony; the test plays the
 * console's main process, which does all backend traffic with console-signed requests.
 */

/** The flags byte of authenticatorData (WebAuthn §6.1): what the authenticator actually claimed. */
function flagsOf(response: AuthenticationResponseJSON): { up: boolean; uv: boolean; be: boolean } {
  const flags = Buffer.from(response.response.authenticatorData, 'base64url')[32] ?? 0;
  return { up: (flags & 0x01) !== 0, uv: (flags & 0x04) !== 0, be: (flags & 0x08) !== 0 };
}

/** CDP reports credential ids in standard base64; WebAuthn JSON uses base64url. */
function base64url(base64: string): string {
  return Buffer.from(base64, 'base64').toString('base64url');
}

test('registers an operator passkey with an enrolment code and signs in usernameless', async ({
  ceremony,
  consoleMain,
}) => {
  const authenticator = await ceremony.addAuthenticator();
  const { operatorId, code } = await consoleMain.newOperator('Ada Teller');

  const creation = await consoleMain.enrolOptions(code);
  expect(creation.authenticatorSelection?.residentKey).toBe('required');
  const registration = await ceremony.register(creation);
  const enrolled = await consoleMain.console.request('POST', '/v1/operators/enrol/verify', {
    code,
    response: registration,
  });
  expect(enrolled.status, JSON.stringify(enrolled.body)).toBe(201);
  expect(enrolled.body.operatorId).toBe(operatorId);
  expect(enrolled.body.credential.deviceBound).toBe(true);
  const credentialId = enrolled.body.credential.id as string;
  await ceremony.note(`enrolled ${operatorId} with credential ${credentialId}`);

  // The passkey lives on the authenticator as a discoverable (resident) credential.
  const held = await authenticator.credentials();
  expect(held.map((c) => ({ id: base64url(c.credentialId), resident: c.isResidentCredential }))).toEqual([
    { id: credentialId, resident: true },
  ]);
  // The code is single use.
  const again = await consoleMain.console.request('POST', '/v1/operators/enrol/options', { code });
  expect(again.status).toBe(401);
  expect(again.body.error.code).toBe('ENROLMENT_CODE_USED');

  // Usernameless: the options name no user and no credential; the authenticator offers its own.
  const request = await consoleMain.signInOptions();
  expect(request.allowCredentials ?? []).toEqual([]);
  const assertion = await ceremony.authenticate(request);
  expect(assertion.id).toBe(credentialId);
  expect(assertion.response.userHandle).toBe(creation.user.id);
  const signedIn = await consoleMain.console.request('POST', '/v1/sign-in/verify', { response: assertion });
  expect(signedIn.status, JSON.stringify(signedIn.body)).toBe(200);
  expect(signedIn.body.session).toMatchObject({
    operatorId,
    operatorName: 'Ada Teller',
    consoleId: consoleMain.console.id,
    channel: 'branch-kiosk',
    level: 'verified',
    aal: 2,
    state: 'active',
  });
  expect(signedIn.body.resumed).toBe(false);
  expect(typeof signedIn.body.token).toBe('string');
  await ceremony.note(`signed in usernameless: session ${signedIn.body.session.id} at ${signedIn.body.session.level}`);

  expect(await consoleMain.credentialsOf(operatorId)).toHaveLength(1);
  ceremony.expectNoNetworkOfItsOwn();
});

test('a step-up with user verification raises the session level', async ({ ceremony, consoleMain }) => {
  const authenticator = await ceremony.addAuthenticator();
  const { operatorId, code } = await consoleMain.newOperator('Grace Cashier');
  expect((await consoleMain.enrol(ceremony, code)).status).toBe(201);

  // Sign in without user verification: a presence-level session.
  await authenticator.answerWithPresenceOnly(true);
  const { response, result } = await consoleMain.signIn(ceremony);
  expect(flagsOf(response)).toMatchObject({ up: true, uv: false });
  expect(result.status, JSON.stringify(result.body)).toBe(200);
  expect(result.body.session).toMatchObject({ operatorId, level: 'presence', aal: 1 });
  const sessionId = result.body.session.id as string;
  await ceremony.note(`signed in at presence: ${sessionId}`);

  // payment.approve needs "verified": the backend asks for a step-up that requires UV.
  const first = await consoleMain.stepUpOptions(sessionId, 'payment.approve');
  expect(first.decision).toMatchObject({ outcome: 'step-up', level: 'verified' });
  expect(first.options.userVerification).toBe('required');
  expect(first.options.allowCredentials.map((c: { id: string }) => c.id)).toEqual([response.id]);

  // An assertion without UV does not satisfy it.
  const refused = await consoleMain.stepUp(ceremony, sessionId, first.options, 'payment.approve');
  expect(refused.status).toBe(403);
  expect(refused.body.error.code).toBe('WEBAUTHN_USER_VERIFICATION_REQUIRED');

  // A failed UV gesture (wrong PIN, unknown finger) never produces an assertion at all.
  await authenticator.answerWithPresenceOnly(false);
  await authenticator.setUserVerified(false);
  const second = await consoleMain.stepUpOptions(sessionId, 'payment.approve');
  expect(second.decision.outcome).toBe('step-up');
  await expect(ceremony.authenticate(second.options)).rejects.toThrow(/NotAllowedError/);

  // The operator verifies: the session is raised to "verified" and the action is allowed.
  await authenticator.setUserVerified(true);
  const third = await consoleMain.stepUpOptions(sessionId, 'payment.approve');
  const steppedUp = await consoleMain.stepUp(ceremony, sessionId, third.options, 'payment.approve');
  expect(steppedUp.status, JSON.stringify(steppedUp.body)).toBe(200);
  expect(steppedUp.body.decision.outcome).toBe('allow');
  expect(steppedUp.body.session).toMatchObject({ id: sessionId, level: 'verified', aal: 2 });
  expect(typeof steppedUp.body.token).toBe('string');
  await ceremony.note(`stepped up for payment.approve: ${sessionId} now ${steppedUp.body.session.level}`);

  // Now the action is allowed outright, with no further ceremony.
  const after = await consoleMain.stepUpOptions(sessionId, 'payment.approve');
  expect(after.decision.outcome).toBe('allow');
  expect(after.options).toBeUndefined();
  ceremony.expectNoNetworkOfItsOwn();
});

test('a user-presence-only assertion gets the lower level and a UV one gets "verified"', async ({
  ceremony,
  consoleMain,
}) => {
  const authenticator = await ceremony.addAuthenticator();
  const { operatorId, code } = await consoleMain.newOperator('Linus Clerk');
  expect((await consoleMain.enrol(ceremony, code)).status).toBe(201);

  await authenticator.answerWithPresenceOnly(true);
  const presence = await consoleMain.signIn(ceremony);
  expect(flagsOf(presence.response)).toMatchObject({ up: true, uv: false });
  expect(presence.result.status, JSON.stringify(presence.result.body)).toBe(200);
  expect(presence.result.body.session).toMatchObject({ operatorId, level: 'presence', aal: 1 });
  expect(presence.result.body.session.amr).not.toContain('mfa');
  await ceremony.note(`UP only: level ${presence.result.body.session.level}, aal ${presence.result.body.session.aal}`);

  const ended = await consoleMain.console.request('POST', `/v1/sessions/${presence.result.body.session.id}/end`, {
    reason: 'sign-out',
  });
  expect(ended.status).toBe(200);

  await authenticator.answerWithPresenceOnly(false);
  const verified = await consoleMain.signIn(ceremony);
  expect(flagsOf(verified.response)).toMatchObject({ up: true, uv: true });
  expect(verified.result.status, JSON.stringify(verified.result.body)).toBe(200);
  expect(verified.result.body.resumed).toBe(false);
  expect(verified.result.body.session).toMatchObject({ operatorId, level: 'verified', aal: 2 });
  expect(verified.result.body.session.amr).toContain('mfa');
  expect(verified.result.body.session.id).not.toBe(presence.result.body.session.id);
  await ceremony.note(`UP+UV: level ${verified.result.body.session.level}, aal ${verified.result.body.session.aal}`);
  ceremony.expectNoNetworkOfItsOwn();
});

test('a backup-eligible credential is refused when policy says device-bound only', async ({
  ceremony,
  consoleMain,
}) => {
  const { policy } = (await consoleMain.console.ok('GET', '/v1/console/policy')) as {
    policy: { credentials: { deviceBoundOnly: boolean } };
  };
  expect(policy.credentials.deviceBoundOnly).toBe(true);

  // A synced passkey provider: credentials are backup eligible and backed up.
  const authenticator = await ceremony.addAuthenticator({ defaultBackupEligibility: true, defaultBackupState: true });
  const { operatorId, code } = await consoleMain.newOperator('Barbara Synced');
  const refused = await consoleMain.enrol(ceremony, code);
  expect(refused.status, JSON.stringify(refused.body)).toBe(403);
  expect(refused.body.error.code).toBe('CREDENTIAL_NOT_DEVICE_BOUND');
  await ceremony.note(`enrolment refused: ${refused.body.error.code as string}`);

  // The browser did create the passkey; the backend refused to keep it.
  const held = await authenticator.credentials();
  expect(held).toHaveLength(1);
  expect(held[0]).toMatchObject({ backupEligibility: true });
  expect(await consoleMain.credentialsOf(operatorId)).toEqual([]);
  ceremony.expectNoNetworkOfItsOwn();
});

test('the same ceremony from a page on another localhost port is refused', async ({
  context,
  ceremony,
  consoleMain,
}, testInfo) => {
  const elsewhere = await startCeremonyServer();
  try {
    expect(elsewhere.origin).not.toBe(ceremony.origin);
    const rogue = await CeremonyPage.open(context, await context.newPage(), elsewhere);
    await rogue.addAuthenticator();
    const { operatorId, code } = await consoleMain.newOperator('Edsger Visitor');

    // Same RP ID (localhost), so the browser goes ahead; the backend pins the exact origin.
    const registration = await rogue.register(await consoleMain.enrolOptions(code));
    const client = JSON.parse(Buffer.from(registration.response.clientDataJSON, 'base64url').toString('utf8')) as {
      origin: string;
    };
    expect(client.origin).toBe(elsewhere.origin);
    const refused = await consoleMain.console.request('POST', '/v1/operators/enrol/verify', {
      code,
      response: registration,
    });
    expect(refused.status, JSON.stringify(refused.body)).toBe(400);
    expect(refused.body.error.code).toBe('WEBAUTHN_ORIGIN_MISMATCH');
    expect(await consoleMain.credentialsOf(operatorId)).toEqual([]);
    await rogue.note(`refused on ${elsewhere.origin}: ${refused.body.error.code as string}`);
    const path = testInfo.outputPath('other-origin.png');
    await rogue.page.screenshot({ path, fullPage: true });
    await testInfo.attach('other-origin', { path, contentType: 'image/png' });
    rogue.expectNoNetworkOfItsOwn();

    // Control: the same code on the pinned origin enrols, so only the origin made the difference.
    // WebAuthn needs a focused page; the rogue tab took focus when it opened.
    await ceremony.page.bringToFront();
    await ceremony.addAuthenticator();
    const enrolled = await consoleMain.enrol(ceremony, code);
    expect(enrolled.status, JSON.stringify(enrolled.body)).toBe(201);
    expect(await consoleMain.credentialsOf(operatorId)).toHaveLength(1);
    await ceremony.note(`enrolled on the pinned origin ${ceremony.origin}`);
    ceremony.expectNoNetworkOfItsOwn();
  } finally {
    await elsewhere.close();
  }
});
