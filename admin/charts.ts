import { h } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

export interface Series {
  label: string;
  className: string;
  values: number[];
}

/**
 * A bar chart in hand-written SVG: grouped bars per category, an axis with the maximum, and a text
 * alternative (the figure's caption plus a data table a screen reader or a keyboard user can open).
 */
export function barChart(options: {
  title: string;
  summary: string;
  categories: string[];
  series: Series[];
  unit?: string;
  empty: string;
}): HTMLElement {
  const { categories, series } = options;
  const max = Math.max(0, ...series.flatMap((s) => s.values));
  const figure = h('figure', { class: 'card', 'aria-label': options.title });
  figure.append(h('h2', {}, options.title));
  if (categories.length === 0 || max === 0) {
    figure.append(h('p', { class: 'empty' }, options.empty));
    return figure;
  }
  const width = 640;
  const height = 220;
  const left = 36;
  const bottom = 36;
  const plotW = width - left - 8;
  const plotH = height - bottom - 10;
  const groupW = plotW / categories.length;
  const barW = Math.max(1, (groupW * 0.8) / series.length);
  const chart = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    class: 'chart',
    role: 'img',
    'aria-label': options.summary,
  });
  chart.append(svg('title', {}, options.summary));
  chart.append(svg('line', { x1: left, y1: 10, x2: left, y2: 10 + plotH, class: 'axis' }));
  chart.append(svg('line', { x1: left, y1: 10 + plotH, x2: left + plotW, y2: 10 + plotH, class: 'axis' }));
  chart.append(svg('text', { x: left - 4, y: 16, 'text-anchor': 'end' }, String(max)));
  chart.append(svg('text', { x: left - 4, y: 10 + plotH, 'text-anchor': 'end' }, '0'));
  const labelEvery = Math.ceil(categories.length / 12);
  categories.forEach((category, i) => {
    series.forEach((s, j) => {
      const value = s.values[i] ?? 0;
      const barH = (value / max) * plotH;
      const bar = svg('rect', {
        x: left + i * groupW + groupW * 0.1 + j * barW,
        y: 10 + plotH - barH,
        width: barW,
        height: barH,
        class: s.className,
      });
      bar.append(svg('title', {}, `${category} · ${s.label}: ${value}${options.unit ?? ''}`));
      chart.append(bar);
    });
    if (i % labelEvery === 0) {
      chart.append(
        svg('text', { x: left + i * groupW + groupW / 2, y: height - bottom + 16, 'text-anchor': 'middle' }, category),
      );
    }
  });
  figure.append(chart);
  figure.append(
    h('figcaption', {}, options.summary, ' ', ...series.map((s) => h('span', { class: 'pill' }, `■ ${s.label}`))),
  );
  const details = h('details', {}, h('summary', {}, 'Show the data as a table'));
  details.append(
    h(
      'table',
      {},
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { scope: 'col' }, ''),
          series.map((s) => h('th', { scope: 'col' }, s.label)),
        ),
      ),
      h(
        'tbody',
        {},
        categories.map((c, i) =>
          h(
            'tr',
            {},
            h('th', { scope: 'row' }, c),
            series.map((s) => h('td', {}, `${s.values[i] ?? 0}${options.unit ?? ''}`)),
          ),
        ),
      ),
    ),
  );
  figure.append(details);
  return figure;
}
