/**
 * Just enough of a DOM for react-dom/client to mount, update and unmount components that render
 * no host element (they return null and report what they would show), so effects, StrictMode's
 * double mounting and useSyncExternalStore run for real in Node. Pages with real elements are the
 * browser tests' business.
 */
const noop = () => {};

export function fakeContainer(): Element {
  const global = globalThis as Record<string, unknown>;
  global.window ??= globalThis;
  global.HTMLIFrameElement ??= class HTMLIFrameElement {};
  // Updates outside act() are scheduled as in a browser; tests wait for what they expect.
  global.IS_REACT_ACT_ENVIRONMENT = false;
  const document = {
    nodeType: 9,
    addEventListener: noop,
    removeEventListener: noop,
    documentElement: { namespaceURI: 'http://www.w3.org/1999/xhtml' },
    defaultView: globalThis,
  };
  return {
    nodeType: 1,
    nodeName: 'DIV',
    tagName: 'DIV',
    namespaceURI: 'http://www.w3.org/1999/xhtml',
    ownerDocument: document,
    addEventListener: noop,
    removeEventListener: noop,
    childNodes: [],
    firstChild: null,
    textContent: '',
  } as unknown as Element;
}
