import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

/**
 * The relative links of Markdown pages, and whether each one lands: the file exists and, for an
 * `#anchor`, the page has a heading with that anchor as GitHub makes it. test/docs/links.test.ts
 * runs it on the README and docs/; kept apart so that the test can feed it broken pages too.
 */

export interface Link {
  /** The page the link is on, relative to the root. */
  readonly page: string;
  readonly line: number;
  readonly target: string;
}

export interface BrokenLink extends Link {
  readonly reason: string;
}

/** A page's text with fenced code blocks blanked out (their lines kept, so line numbers hold). */
function withoutCode(markdown: string): string {
  let fence: string | undefined;
  return markdown
    .split('\n')
    .map((line) => {
      const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
      if (fence === undefined && marker !== undefined) {
        fence = marker;
        return '';
      }
      if (fence !== undefined) {
        if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length)
          fence = undefined;
        return '';
      }
      return line;
    })
    .join('\n');
}

/** GitHub's anchor for a heading: lower case, punctuation gone, spaces as hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a page's headings, repeated ones numbered as GitHub numbers them (`-1`, `-2`). */
export function anchors(markdown: string): Set<string> {
  const found = new Set<string>();
  const seen = new Map<string, number>();
  for (const match of withoutCode(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(match[1] as string);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    found.add(count === 0 ? base : `${base}-${count}`);
  }
  return found;
}

/** The relative links of a page (`[text](target)`, outside code): no scheme, no protocol-relative URL. */
export function relativeLinks(page: string, markdown: string): Link[] {
  const links: Link[] = [];
  withoutCode(markdown)
    .split('\n')
    .forEach((text, i) => {
      // Inline code may show link syntax without being a link.
      const line = text.replace(/(`+)[^`]*?\1/g, '');
      for (const match of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
        const target = match[1] as string;
        if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue;
        links.push({ page, line: i + 1, target });
      }
    });
  return links;
}

/**
 * The links of `pages` that do not land. `read` gives a page's text by its path relative to
 * `root` (undefined when there is none); by default, the file system.
 */
export function brokenLinks(
  root: string,
  pages: readonly string[],
  read: (path: string) => string | undefined = (path) =>
    statSync(join(root, path), { throwIfNoEntry: false })?.isFile()
      ? readFileSync(join(root, path), 'utf8')
      : undefined,
): BrokenLink[] {
  const broken: BrokenLink[] = [];
  for (const page of pages) {
    const markdown = read(page);
    if (markdown === undefined) throw new Error(`no page ${page}`);
    for (const link of relativeLinks(page, markdown)) {
      const [path = '', anchor] = link.target.split('#', 2) as [string, string | undefined];
      const file = path === '' ? page : relative(root, join(root, dirname(page), decodeURI(path)));
      const target = file === page ? markdown : read(file);
      if (target === undefined && !existsSync(join(root, file))) {
        broken.push({ ...link, reason: `${file} does not exist` });
        continue;
      }
      if (anchor === undefined || anchor === '') continue;
      if (!file.endsWith('.md')) {
        broken.push({ ...link, reason: `#${anchor} points into ${file}, which is not a Markdown page` });
        continue;
      }
      if (!anchors(target ?? '').has(anchor)) {
        broken.push({ ...link, reason: `${file} has no heading whose anchor is #${anchor}` });
      }
    }
  }
  return broken;
}
