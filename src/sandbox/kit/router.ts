import type { Route } from './types.js';

interface Compiled {
  route: Route;
  name: string;
  /** Literal segment, or `null` for a parameter. */
  segments: (string | null)[];
  paramNames: string[];
}

export type RouteMatch =
  | { kind: 'route'; route: Route; name: string; params: Record<string, string> }
  | { kind: 'method-not-allowed'; allow: string[] }
  | { kind: 'bad-encoding' }
  | { kind: 'none' };

/**
 * Matches a raw path against route patterns segment by segment, *before* percent-decoding, so that an id
 * holding an encoded `/` (`%2F`) stays one segment; parameters are decoded afterwards.
 */
export class Router {
  private readonly bySegments = new Map<number, Compiled[]>();

  constructor(routes: Route[]) {
    for (const route of routes) {
      const parts = route.pattern.split('/');
      const c: Compiled = {
        route,
        name: `${route.method} ${route.pattern}`,
        segments: parts.map((p) => (p.startsWith(':') ? null : p)),
        paramNames: parts.filter((p) => p.startsWith(':')).map((p) => p.slice(1)),
      };
      const list = this.bySegments.get(parts.length) ?? [];
      list.push(c);
      this.bySegments.set(parts.length, list);
    }
  }

  match(method: string, rawPath: string): RouteMatch {
    const parts = rawPath.split('/');
    const candidates = this.bySegments.get(parts.length);
    if (!candidates) return { kind: 'none' };
    const allow: string[] = [];
    for (const c of candidates) {
      if (!fits(c, parts)) continue;
      if (c.route.method !== method) {
        allow.push(c.route.method);
        continue;
      }
      const params: Record<string, string> = {};
      let p = 0;
      for (let i = 0; i < parts.length; i++) {
        if (c.segments[i] !== null) continue;
        try {
          params[c.paramNames[p++]!] = decodeURIComponent(parts[i]!);
        } catch {
          return { kind: 'bad-encoding' };
        }
      }
      return { kind: 'route', route: c.route, name: c.name, params };
    }
    return allow.length > 0 ? { kind: 'method-not-allowed', allow } : { kind: 'none' };
  }
}

function fits(c: Compiled, parts: string[]): boolean {
  for (let i = 0; i < parts.length; i++) {
    const s = c.segments[i];
    if (s === null) {
      if (parts[i] === '') return false;
    } else if (s !== parts[i]) {
      return false;
    }
  }
  return true;
}
