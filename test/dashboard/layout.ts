import type { Page } from 'playwright-core';

/**
 * What does not fit, as the page lays it out now: horizontal page scroll, a card (a `section`)
 * past the viewport, a table or other element past its card (unless a scrolling box inside the
 * card holds it), and a name cell whose text is clipped without its full name in a title.
 */
export async function layoutProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const problems: string[] = [];
    const width = window.innerWidth;
    const page = document.documentElement;
    if (page.scrollWidth > width) problems.push(`the page scrolls sideways: ${page.scrollWidth} > ${width}`);
    for (const card of document.querySelectorAll('section')) {
      const box = card.getBoundingClientRect();
      if (box.left < -1 || box.right > width + 1)
        problems.push(`#${card.id} is off the screen: ${box.left}..${box.right} of ${width}`);
      const overflowing = new Set<Element>();
      for (const element of card.querySelectorAll<HTMLElement>('*')) {
        // Only the outermost element that overflows is named.
        if (element.parentElement && overflowing.has(element.parentElement)) {
          overflowing.add(element);
          continue;
        }
        // A box that scrolls inside the card may hold something wider; the box itself must fit.
        let holder: Element = card;
        for (let up = element.parentElement; up && up !== card; up = up.parentElement) {
          if (/auto|scroll/.test(getComputedStyle(up).overflowX)) {
            holder = up;
            break;
          }
        }
        const inner = element.getBoundingClientRect();
        const outer = holder.getBoundingClientRect();
        if (inner.width === 0 || element.closest('[hidden]')) continue;
        const name = `${element.tagName.toLowerCase()}${element.id ? `#${element.id}` : ''}`;
        if (holder === card && (inner.right > outer.right + 1 || inner.left < outer.left - 1)) {
          overflowing.add(element);
          problems.push(
            `${name} overflows #${card.id}: ${inner.left}..${inner.right} in ${outer.left}..${outer.right}`,
          );
        }
      }
      for (const table of card.querySelectorAll('table')) {
        const inner = table.getBoundingClientRect();
        const scroller = table.parentElement as HTMLElement;
        const scrolls = scroller !== card && /auto|scroll/.test(getComputedStyle(scroller).overflowX);
        if (inner.right > box.right + 1 && !scrolls)
          problems.push(`table#${table.id} overflows #${card.id}: ${inner.right} > ${box.right}`);
      }
    }
    for (const td of document.querySelectorAll<HTMLTableCellElement>(
      '#by-tenant td, #by-topic td, td.name',
    )) {
      const clipped = td.scrollWidth > td.clientWidth + 1;
      if (clipped && td.title !== td.textContent)
        problems.push(`"${td.textContent}" is clipped (${td.scrollWidth} > ${td.clientWidth}) with no title`);
    }
    return problems;
  });
}
