// A tiny element builder. Text always goes in as text nodes (never parsed as HTML), so
// notification content cannot inject markup whatever it contains.

type Child = Node | string | number | null | undefined | false;

export interface Attrs {
  class?: string;
  id?: string;
  testid?: string;
  title?: string;
  type?: string;
  disabled?: boolean;
  attrs?: Record<string, string>;
  on?: Partial<{ [K in keyof HTMLElementEventMap]: (event: HTMLElementEventMap[K]) => void }>;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    if (attrs.class) el.className = attrs.class;
    if (attrs.id) el.id = attrs.id;
    if (attrs.testid) el.dataset.testid = attrs.testid;
    if (attrs.title) el.title = attrs.title;
    if (attrs.type) el.setAttribute("type", attrs.type);
    if (attrs.disabled) el.setAttribute("disabled", "");
    for (const [name, value] of Object.entries(attrs.attrs ?? {})) el.setAttribute(name, value);
    for (const [name, handler] of Object.entries(attrs.on ?? {})) {
      el.addEventListener(name, handler as EventListener);
    }
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything inside `parent`. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}
