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
 * Each node writes a revocation's delivery rows once its consoles have answered, or 250 ms after the send
 * (backend/services/revocation-hub.ts, FANOUT_ACK_WAIT_MS): until this long after the call, "all that is
 * listed has acknowledged" may not yet count another node's consoles.
 */
const OTHER_NODES_WRITTEN_MS = 2_000;

/**
 * After a revocation: what it ended, and how long it took to reach the consoles (from their
 * acknowledgements), updated until every console that was sent it has acknowledged it (or 15 s), and
 * for at least OTHER_NODES_WRITTEN_MS.
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
      const waited = Date.now() - started;
      const again = () => window.setTimeout(() => void poll(), 250);
      if (total === 0) {
        // Another node's consoles may not be written yet.
        if (waited < OTHER_NODES_WRITTEN_MS) again();
        else line.textContent = 'No console was connected to receive it; each gets it when it reconnects.';
        return;
      }
      line.textContent =
        d.maxAckMs === null
          ? `Acknowledged by 0 of ${total} console(s) so far.`
          : `Reached ${d.acknowledged} of ${total} console(s); slowest acknowledgement ${d.maxAckMs} ms.`;
      line.id = 'propagation';
      if ((d.acknowledged < total || waited < OTHER_NODES_WRITTEN_MS) && waited < 15_000) again();
    } catch (error) {
      box.append(errorBox(error));
    }
  };
  void poll();
}
