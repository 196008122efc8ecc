/**
 * Small readers of the ops pages' HTML for the integration tests (src/http/pages/ writes it; no DOM
 * library in the project): the parts the DOM contract names, found by their ids and attributes.
 */

/** The inner HTML of `<section id="...">` (sections do not nest). */
export function section(html: string, id: string): string {
  const m = new RegExp(`<section id="${id}">([\\s\\S]*?)</section>`).exec(html);
  if (!m) throw new Error(`no section#${id}`);
  return m[1]!;
}

/** The inner HTML of `<table id="...">`. */
export function table(html: string, id: string): string {
  const m = new RegExp(`<table id="${id}">([\\s\\S]*?)</table>`).exec(html);
  if (!m) throw new Error(`no table#${id}`);
  return m[1]!;
}

/** How many times `needle` occurs. */
export function count(html: string, needle: string | RegExp): number {
  if (typeof needle === 'string') return html.split(needle).length - 1;
  return [...html.matchAll(new RegExp(needle.source, `${needle.flags.replace('g', '')}g`))].length;
}

/** The `href` of the first `<a rel="...">`, decoded from HTML (`&amp;`). */
export function relHref(html: string, rel: string): string | undefined {
  const m = new RegExp(`<a rel="${rel}" href="([^"]*)"`).exec(html);
  return m ? m[1]!.replace(/&amp;/g, '&') : undefined;
}

/** Values of one attribute on elements of a class: `attrs(html, 'change', 'data-user')`. */
export function attrs(html: string, cls: string, attr: string): string[] {
  const re = new RegExp(`class="${cls}"[^>]*?${attr}="([^"]*)"`, 'g');
  return [...html.matchAll(re)].map((m) => m[1]!);
}

/** The `<tr ...data-run-id="id">...</tr>` row. */
export function row(html: string, attr: string, value: string): string {
  const m = new RegExp(
    `<tr[^>]*${attr}="${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"[^>]*>([\\s\\S]*?)</tr>`,
  ).exec(html);
  if (!m) throw new Error(`no tr[${attr}="${value}"]`);
  return m[1]!;
}

/** HTML-escapes like hono/html, to look for a value as the page prints it. */
export function escaped(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** The DOM contract every page keeps: main#page, the nav with its links and the user search form. */
export function expectShell(html: string): string[] {
  const missing: string[] = [];
  const need: [string, RegExp][] = [
    ['<title>', /<title>[^<]+<\/title>/],
    ['main#page', /<main id="page">/],
    ['nav#nav', /<nav id="nav">/],
    ['a[href=/runs]', /<nav id="nav">[\s\S]*<a href="\/runs">[\s\S]*<\/nav>/],
    ['a[href=/targets]', /<nav id="nav">[\s\S]*<a href="\/targets">[\s\S]*<\/nav>/],
    ['a[href=/dashboard]', /<nav id="nav">[\s\S]*<a href="\/dashboard">[\s\S]*<\/nav>/],
    ['form#user-search', /<form id="user-search" method="get" action="\/users">\s*<input name="id"/],
  ];
  for (const [what, re] of need) if (!re.test(html)) missing.push(what);
  return missing;
}
