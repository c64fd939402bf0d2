/* eslint-disable no-console -- a command-line tool: its output is for the person running it */
/**
 * Runs the sample teller app against a Baton backend:
 *
 *   BATON_URL=http://localhost:8470 TELLER_PORT=8480 node --import tsx examples/teller-app/cli.ts
 *
 * With TELLER_SSF_TOKEN (a Shared Signals receiver token), revocations come from Baton's SSF stream.
 *
 * The app's revocation key (a P-256 private JWK) is read from TELLER_KEY_FILE (default
 * `./teller-revocation-key.json`), created on first run; its public half is printed for the policy's
 * `apps[].revocationKey`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { TELLER_ACTIONS, TELLER_AUDIENCE, startTellerApp } from './teller-app.js';

const batonUrl = process.env.BATON_URL ?? 'http://localhost:8470';
const keyFile = process.env.TELLER_KEY_FILE ?? 'teller-revocation-key.json';
let privateJwk: JWK;
if (existsSync(keyFile)) privateJwk = JSON.parse(readFileSync(keyFile, 'utf8')) as JWK;
else {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  privateJwk = await exportJWK(privateKey);
  writeFileSync(keyFile, JSON.stringify(privateJwk), { mode: 0o600 });
}
const { kty, crv, x, y } = privateJwk;
let lastError = '';
const app = await startTellerApp({
  batonUrl,
  revocationKey: privateJwk,
  // TELLER_SSF_TOKEN: follow Baton's Shared Signals stream instead of its own revocation feed.
  ...(process.env.TELLER_SSF_TOKEN === undefined ? {} : { ssfToken: process.env.TELLER_SSF_TOKEN }),
  port: Number(process.env.TELLER_PORT ?? 8480),
  onRevocation: (r) => console.log(`revocation ${r.epoch}: ${r.kind} ${r.targetId}`),
  // Said once per distinct refusal (the subscription retries by itself, backing off to 5 s).
  onRevocationError: (error) => {
    if (error.message === lastError) return;
    lastError = error.message;
    console.log(`the revocation stream cannot be followed yet (${error.message.slice(0, 200)})`);
    console.log(
      '  until the "apps" entry printed at start is in the published policy, Baton refuses this app its tokens and stream',
    );
  },
});
console.log(`teller app on ${app.url} (Baton at ${batonUrl})`);
console.log('add to the policy\'s "apps":');
console.log(
  JSON.stringify(
    {
      audience: TELLER_AUDIENCE,
      name: 'Teller',
      actions: Object.keys(TELLER_ACTIONS),
      // The teller page's origin in the console's workspace: only a page there gets tokens for this server.
      workspaceOrigins: [new URL(app.url).origin],
      revocationKey: { kty, crv, x, y },
    },
    null,
    2,
  ),
);
const stop = () => void app.close().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
