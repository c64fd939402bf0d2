import { api, endpoint } from './api.js';
import { errorBox, h, replace } from './dom.js';

interface Outcome {
  epoch: number;
  sessionsRevoked: string[];
  pushedTo: number;
}
/** Counted by the backend (`limit=0`: no console listed): a revocation may reach 10,000 consoles. */
interface Deliveries {
  epoch: number;
  sent: number;
  acknowledged: number;
  maxAckMs: number | null;
}

/**
 * After a revocation: what it ended, and how long it took to reach the consoles (from their
 * acknowledgements), updated until every console that was sent it has acknowledged it (or 15 s).
 */
export function showPropagation(box: HTMLElement, what: string, outcome: Outcome): void {
  const line = h('p', { 'data-epoch': outcome.epoch }, 'Waiting for the consoles to acknowledge…');
  replace(
    box,
    h(
      'div',
      { class: 'ok', role: 'status', id: 'revocation-result' },
      h(
        'p',
        {},
        `${what} revoked (revocation #${outcome.epoch}). Sessions ended: ${outcome.sessionsRevoked.length}. Sent to ${outcome.pushedTo} connected console(s).`,
      ),
      line,
    ),
  );
  const started = Date.now();
  const poll = async () => {
    try {
      const d = await api<Deliveries>(...endpoint('adminRevocationDeliveries', { epoch: outcome.epoch }, { limit: 0 }));
      const total = d.sent;
      if (total === 0) {
        line.textContent = 'No console was connected to receive it; each gets it when it reconnects.';
        return;
      }
      line.textContent =
        d.maxAckMs === null
          ? `Acknowledged by 0 of ${total} console(s) so far.`
          : `Reached ${d.acknowledged} of ${total} console(s); slowest acknowledgement ${d.maxAckMs} ms.`;
      line.id = 'propagation';
      if (d.acknowledged < total && Date.now() - started < 15_000) window.setTimeout(() => void poll(), 250);
    } catch (error) {
      box.append(errorBox(error));
    }
  };
  void poll();
}
