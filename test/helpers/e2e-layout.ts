import { expect, type Locator, type Page } from '@playwright/test';

/** The viewports a service-desk screen and a branch screen have. */
export const WIDE_VIEWPORTS = [
  { width: 1366, height: 768 },
  { width: 1920, height: 1080 },
] as const;

/**
 * What is wrong with the page's layout as a person would meet it, measured from bounding boxes:
 * the page scrolls sideways, a card's content is wider than the card, or two visible controls
 * (links, buttons, fields) overlap so that one covers the other.
 */
export function layoutProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const problems: string[] = [];
    const root = document.scrollingElement ?? document.documentElement;
    if (root.scrollWidth > root.clientWidth) {
      problems.push(`the page scrolls sideways: ${root.scrollWidth} px of content in ${root.clientWidth} px`);
    }
    for (const card of Array.from(document.querySelectorAll<HTMLElement>('.card'))) {
      if (card.scrollWidth > card.clientWidth + 1) {
        const title = card.querySelector('h2')?.textContent ?? card.id;
        problems.push(
          `the card "${title}" is wider inside (${card.scrollWidth} px) than it is (${card.clientWidth} px)`,
        );
      }
    }
    const name = (e: Element) =>
      `${e.tagName.toLowerCase()} "${(e.getAttribute('aria-label') ?? e.textContent ?? e.id).trim().slice(0, 40)}"`;
    const controls = Array.from(document.querySelectorAll('a[href], button, input, select, textarea')).filter((e) => {
      const box = e.getBoundingClientRect();
      return box.width > 0 && box.height > 0 && getComputedStyle(e).visibility !== 'hidden';
    });
    const boxes = controls.map((e) => ({ e, box: e.getBoundingClientRect() }));
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i];
        const b = boxes[j];
        if (a === undefined || b === undefined || a.e.contains(b.e) || b.e.contains(a.e)) continue;
        const x = Math.min(a.box.right, b.box.right) - Math.max(a.box.left, b.box.left);
        const y = Math.min(a.box.bottom, b.box.bottom) - Math.max(a.box.top, b.box.top);
        if (x > 1 && y > 1)
          problems.push(`${name(a.e)} and ${name(b.e)} overlap (${Math.round(x)}×${Math.round(y)} px)`);
      }
    }
    return problems;
  });
}

/** Each button can be clicked where a person would click it: at its centre, nothing lies on top of it. */
export async function expectClickable(buttons: Locator): Promise<void> {
  const all = await buttons.all();
  expect(all.length).toBeGreaterThan(0);
  for (const button of all) {
    await button.scrollIntoViewIfNeeded();
    const hit = await button.evaluate((b) => {
      const box = b.getBoundingClientRect();
      const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
      return top === b || (top !== null && b.contains(top))
        ? 'itself'
        : `${top?.tagName.toLowerCase() ?? 'nothing'} ${top?.closest('section')?.querySelector('h2')?.textContent ?? ''}`;
    });
    expect(
      hit,
      `what lies at the centre of ${(await button.getAttribute('aria-label')) ?? (await button.textContent())}`,
    ).toBe('itself');
  }
}
