/**
 * The teller app's page, shown as a Baton workspace: it asks the agent (`window.baton.actionToken`,
 * the workspace preload) for a token per call, and on a 401 `insufficient_user_authentication`
 * hands the challenge back to the agent, which asks the operator to step up and returns a fresh
 * token; the page then retries once. The assurance token never reaches the page.
 */
export const TELLER_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Teller</title>
<style>
body { font: 16px system-ui, sans-serif; margin: 2rem; max-width: 40rem; }
button { font-size: 1rem; padding: .5rem 1rem; margin-right: .5rem; }
#out { margin-top: 1.5rem; padding: 1rem; background: #f3f4f6; border-radius: .5rem; white-space: pre-wrap; }
</style></head>
<body>
<h1>Teller</h1>
<p>Customer <input id="customer" value="c-1001" aria-label="Customer id"></p>
<button id="lookup">Look up customer</button>
<p>Payment <input id="payment" value="p-1" aria-label="Payment id"></p>
<button id="approve">Approve payment</button>
<div id="out" role="status" aria-live="polite">Ready.</div>
<script>
const AUDIENCE = '__AUDIENCE__';
const out = document.getElementById('out');
// Each action's token is kept until shortly before it expires (one exchange per action, not per click);
// a 401 drops it, and its challenge goes to the agent with the request for the next one.
const kept = new Map();
async function token(action, challenge) {
  if (!window.baton || !window.baton.actionToken) throw new Error('Open this app as a Baton workspace');
  const held = kept.get(action);
  if (!challenge && held && held.expiresAt - 30000 > Date.now()) return held.token;
  kept.delete(action);
  const result = await window.baton.actionToken(challenge ? { audience: AUDIENCE, action, challenge } : { audience: AUDIENCE, action });
  if (!result.ok) throw new Error(result.error.code + ': ' + result.error.message);
  if (result.value.outcome !== 'issued') throw new Error(result.value.outcome === 'deny' ? 'Not allowed here: ' + result.value.reasons.join(', ') : result.value.code + ': ' + result.value.message);
  kept.set(action, result.value);
  return result.value.token;
}
async function call(method, path, action) {
  let response = await fetch(path, { method, headers: { authorization: 'Bearer ' + await token(action) } });
  const challenge = response.headers.get('www-authenticate');
  if (response.status === 401 && challenge) {
    // RFC 9470: the agent steps the operator up (or just exchanges again for an expired token), then we retry once.
    kept.delete(action);
    const refusal = await response.json().catch(() => ({}));
    const code = refusal.error ? refusal.error.code : String(response.status);
    let again;
    try {
      again = await token(action, challenge);
    } catch (e) {
      throw new Error('The teller server refused the call (' + code + '); Baton gave no new token: ' + e.message);
    }
    response = await fetch(path, { method, headers: { authorization: 'Bearer ' + again } });
  }
  if (response.status === 401) kept.delete(action);
  return { status: response.status, body: await response.json() };
}
function show(what) { out.textContent = typeof what === 'string' ? what : JSON.stringify(what, null, 2); }
document.getElementById('lookup').onclick = () =>
  call('GET', '/api/customers/' + encodeURIComponent(document.getElementById('customer').value), 'customer.view').then(show, (e) => show(String(e.message)));
document.getElementById('approve').onclick = () =>
  call('POST', '/api/payments/' + encodeURIComponent(document.getElementById('payment').value) + '/approve', 'payment.approve').then(show, (e) => show(String(e.message)));
</script>
</body>
</html>
`;
