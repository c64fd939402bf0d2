import { encode } from 'uqr';
import { announce, fmtTime, h } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';

/** A QR code of `text` drawn as SVG rectangles (no HTML strings, no network): one per dark module. */
export function qrCode(text: string, label: string): SVGSVGElement {
  const { data, size } = encode(text, { ecc: 'M', border: 2 });
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${size} ${size}`);
  svg.setAttribute('class', 'qr');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.setAttribute('shape-rendering', 'crispEdges');
  svg.dataset.size = String(size);
  const background = document.createElementNS(SVG, 'rect');
  background.setAttribute('width', String(size));
  background.setAttribute('height', String(size));
  background.setAttribute('fill', '#fff');
  svg.append(background);
  const path: string[] = [];
  data.forEach((row, y) =>
    row.forEach((dark, x) => {
      if (dark) path.push(`M${x} ${y}h1v1h-1z`);
    }),
  );
  const modules = document.createElementNS(SVG, 'path');
  modules.setAttribute('d', path.join(''));
  modules.setAttribute('fill', '#000');
  svg.append(modules);
  return svg;
}

export interface OneTimeSecret {
  /** What it is, for the heading and the print-out ("Enrolment code for Ada Teller"). */
  title: string;
  /** The secret itself. */
  value: string;
  /** When it stops working; absent for a token that lives until revoked (an SSF receiver's). */
  expiresAt?: number;
  /** How to use it, one sentence (printed too). */
  instructions: string;
  /** The element id of the value, for tests and labels. */
  id: string;
}

/**
 * A one-time code or token, shown once: the value, a copy button, a print view (the browser's
 * print dialog with only this card on the page) and a QR code of the value.
 */
export function oneTimeSecret(secret: OneTimeSecret): HTMLElement {
  const copy = h('button', { type: 'button', 'aria-label': `Copy ${secret.title}` }, 'Copy');
  const print = h('button', { type: 'button', 'aria-label': `Print ${secret.title}` }, 'Print');
  const card = h(
    'div',
    { class: 'ok one-time', role: 'status', 'aria-label': secret.title },
    h('h3', {}, secret.title),
    h(
      'div',
      { class: 'one-time-body' },
      h(
        'div',
        {},
        h('p', {}, h('strong', { class: 'mono secret', id: secret.id }, secret.value)),
        h(
          'p',
          {},
          secret.expiresAt === undefined
            ? 'Shown once. It works until it is revoked.'
            : `Shown once. Valid until ${fmtTime(secret.expiresAt)}.`,
        ),
        h('p', {}, secret.instructions),
        h('div', { class: 'row no-print' }, copy, print),
      ),
      qrCode(secret.value, `QR code of the ${secret.title.toLowerCase()}`),
    ),
  );
  copy.addEventListener('click', () => {
    navigator.clipboard.writeText(secret.value).then(
      () => {
        copy.textContent = 'Copied';
        announce(`${secret.title} copied to the clipboard`);
      },
      () => announce('The browser refused the clipboard: select the text and copy it by hand.'),
    );
  });
  print.addEventListener('click', () => {
    // The print stylesheet shows only the element marked for printing.
    document.body.classList.add('printing');
    card.classList.add('print-target');
    const done = () => {
      document.body.classList.remove('printing');
      card.classList.remove('print-target');
      window.removeEventListener('afterprint', done);
    };
    window.addEventListener('afterprint', done);
    window.print();
  });
  return card;
}
