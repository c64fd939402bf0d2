import { fmtTime, h } from './dom.js';

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
  /** The bar's class (admin.css gives it its colour); the legend's swatch carries the same class. */
  className: string;
  values: number[];
}

/**
 * The categories of a chart over time: each is a bucket starting at `starts[i]`. The axis then reads
 * ISO dates in the admin's time zone: the date on the first label and wherever the day changes, the
 * time of day otherwise (the chart's title names the zone).
 */
export interface TimeAxis {
  starts: number[];
  bucketMs: number;
}

/** Axis labels for a time axis: `2026-12-04 14:00` where the day changes (and first), `15:00` otherwise. */
export function timeLabels(axis: TimeAxis): string[] {
  let day = '';
  const dayLong = axis.bucketMs >= 86_400_000;
  return axis.starts.map((start) => {
    const text = fmtTime(start, { zone: false });
    const date = text.slice(0, 10);
    if (dayLong) return date;
    if (date !== day) {
      day = date;
      return text;
    }
    return text.slice(11, 16);
  });
}

/**
 * A bar chart in hand-written SVG: grouped bars per category, a value axis, a legend whose swatches
 * are drawn with the bars' own classes (so their colours are the bars' colours), and a text
 * alternative (the caption plus a data table a screen reader or a keyboard user can open). With
 * `link`, each bar is a link to what it counts (the events behind it), reachable by keyboard.
 */
export function barChart(options: {
  title: string;
  summary: string;
  categories: string[];
  /** When the categories are time buckets: dated axis labels and full dates in each bar's tooltip. */
  time?: TimeAxis;
  series: Series[];
  unit?: string;
  empty: string;
  /** Where a bar leads (series index, category index), or undefined for a bar that leads nowhere. */
  link?: (series: number, category: number) => string | undefined;
  id?: string;
}): HTMLElement {
  const { series } = options;
  const categories = options.time === undefined ? options.categories : timeLabels(options.time);
  const full = (i: number) =>
    options.time === undefined
      ? (options.categories[i] ?? '')
      : `${fmtTime(options.time.starts[i])} + ${Math.round(options.time.bucketMs / 60_000)} min`;
  const max = Math.max(0, ...series.flatMap((s) => s.values));
  const figure = h('figure', { class: 'card', 'aria-label': options.title, id: options.id });
  figure.append(h('h2', {}, options.title));
  if (categories.length === 0 || max === 0) {
    figure.append(h('p', { class: 'empty' }, options.empty));
    return figure;
  }
  const width = 640;
  const height = 230;
  const left = 64;
  const bottom = 46;
  const plotW = width - left - 8;
  const plotH = height - bottom - 10;
  const groupW = plotW / categories.length;
  const barW = Math.max(1, (groupW * 0.8) / series.length);
  const chart = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    class: 'chart',
    // A picture with its summary for a screen reader; its links are in the data table below as well.
    role: 'img',
    'aria-label': options.summary,
  });
  chart.append(svg('title', {}, options.summary));
  chart.append(svg('line', { x1: left, y1: 10, x2: left, y2: 10 + plotH, class: 'axis' }));
  chart.append(svg('line', { x1: left, y1: 10 + plotH, x2: left + plotW, y2: 10 + plotH, class: 'axis' }));
  chart.append(svg('text', { x: left - 4, y: 16, 'text-anchor': 'end' }, `${max}${options.unit ?? ''}`));
  chart.append(svg('text', { x: left - 4, y: 10 + plotH, 'text-anchor': 'end' }, '0'));
  // At most six labels (a date is about 80 units wide at this size); a dated label is written on two lines.
  const labelEvery = Math.ceil(categories.length / 6);
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
        'data-series': s.label,
        'data-category': full(i),
        'data-value': value,
      });
      const label = `${full(i)} · ${s.label}: ${value}${options.unit ?? ''}`;
      bar.append(svg('title', {}, label));
      const href = value > 0 ? options.link?.(j, i) : undefined;
      if (href === undefined) chart.append(bar);
      else {
        const a = svg('a', { href, class: 'bar-link', 'aria-label': `${label}: show the events` });
        a.append(bar);
        chart.append(a);
      }
    });
    if (i % labelEvery === 0) {
      const x = left + i * groupW + groupW / 2;
      const [first, second] = category.length > 10 ? [category.slice(0, 10), category.slice(11)] : [category, ''];
      chart.append(svg('text', { x, y: height - bottom + 16, 'text-anchor': 'middle', class: 'tick' }, first));
      if (second !== '') chart.append(svg('text', { x, y: height - bottom + 30, 'text-anchor': 'middle' }, second));
    }
  });
  figure.append(chart);
  const legend = h(
    'ul',
    { class: 'legend', 'aria-label': 'Legend' },
    series.map((s) => {
      const swatch = svg('svg', { width: 12, height: 12, class: 'chart swatch', 'aria-hidden': 'true' });
      swatch.append(svg('rect', { x: 0, y: 0, width: 12, height: 12, class: s.className }));
      return h('li', { 'data-series': s.label }, swatch, ` ${s.label}`);
    }),
  );
  figure.append(h('figcaption', {}, options.summary), legend);
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
          h('th', { scope: 'col' }, options.time === undefined ? '' : 'from'),
          series.map((s) => h('th', { scope: 'col' }, s.label)),
        ),
      ),
      h(
        'tbody',
        {},
        options.categories.map((_, i) =>
          h(
            'tr',
            {},
            h(
              'th',
              { scope: 'row' },
              options.time === undefined
                ? (options.categories[i] ?? '')
                : fmtTime(options.time.starts[i], { zone: false }),
            ),
            series.map((s, j) => {
              const value = `${s.values[i] ?? 0}${options.unit ?? ''}`;
              const href = (s.values[i] ?? 0) > 0 ? options.link?.(j, i) : undefined;
              return h('td', {}, href === undefined ? value : h('a', { href }, value));
            }),
          ),
        ),
      ),
    ),
  );
  figure.append(details);
  return figure;
}
