import type { SourcePattern } from '../../bridges/source.ts';

/** NATS subjects, as `nats:` bridges take them: `*` a token, `>` the rest. */
export const subjectPattern: SourcePattern = {
  noun: 'subject',
  compile: (pattern, fail) => ({ wildcards: checkSubject(pattern, fail) }),
  captures: subjectCaptures,
};

/** Validates a NATS subject and counts its wildcards. */
export function checkSubject(subject: string, fail: (problem: string) => never): number {
  if (/\s/.test(subject)) fail('the subject contains a space');
  const tokens = subject.split('.');
  let wildcards = 0;
  tokens.forEach((token, i) => {
    if (token === '')
      fail(`the subject ${JSON.stringify(subject)} has an empty token (".." or a "." at an end)`);
    if (token === '*') wildcards++;
    else if (token === '>') {
      if (i !== tokens.length - 1) fail('">" may only be the last token of the subject');
      wildcards++;
    } else if (token.includes('*') || token.includes('>')) {
      fail(`"${token}": a wildcard must be a whole token, e.g. metrics.* or metrics.>`);
    }
  });
  return wildcards;
}

/** What each `*` token matched in `subject`, and the rest of it for `>`; undefined when it does not match. */
function subjectCaptures(pattern: string, subject: string): string[] | undefined {
  const want = pattern.split('.');
  const got = subject.split('.');
  const found: string[] = [];
  for (let i = 0; i < want.length; i++) {
    const token = want[i] as string;
    if (token === '>') {
      if (got.length <= i) return undefined;
      found.push(got.slice(i).join('.'));
      return found;
    }
    const actual = got[i];
    if (actual === undefined) return undefined;
    if (token === '*') found.push(actual);
    else if (token !== actual) return undefined;
  }
  return got.length === want.length ? found : undefined;
}
