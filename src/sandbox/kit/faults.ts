import { prng } from './prng.js';
import type { FaultKind, FaultRule } from './types.js';

const KINDS: readonly FaultKind[] = ['status', 'reset', 'hang', 'latency', 'body'];

/** What a `body` fault answers by default: a proxy's HTML error page with status 200. */
export const BODY_FAULT_DEFAULT = '<html><head><title>Service</title></head><body>Please wait…</body></html>';

interface ActiveRule {
  rule: FaultRule;
  rate: number;
  regex: RegExp | undefined;
  /** Faults left before the rule expires; Infinity without `times`. */
  left: number;
}

/** What the faults decided for one request: a delay first, then perhaps a terminal fault. */
export interface FaultDecision {
  latencyMs: number;
  terminal: FaultRule | undefined;
}

const NONE: FaultDecision = { latencyMs: 0, terminal: undefined };

/** Checks a rule list from the API or the inspection endpoint; throws a message naming the bad field. */
export function validateFaultRules(input: unknown): FaultRule[] {
  if (!Array.isArray(input)) throw new TypeError('faults must be an array of rules');
  return input.map((r, i) => {
    const at = `faults[${i}]`;
    if (typeof r !== 'object' || r === null) throw new TypeError(`${at} must be an object`);
    const rule = r as FaultRule;
    if (!KINDS.includes(rule.kind)) throw new TypeError(`${at}.kind must be one of ${KINDS.join(', ')}`);
    if (rule.rate !== undefined && !(typeof rule.rate === 'number' && rule.rate >= 0 && rule.rate <= 1)) {
      throw new TypeError(`${at}.rate must be a number from 0 to 1`);
    }
    if (
      rule.status !== undefined &&
      !(Number.isInteger(rule.status) && rule.status >= 100 && rule.status <= 599)
    ) {
      throw new TypeError(`${at}.status must be an HTTP status`);
    }
    if (rule.body !== undefined && typeof rule.body !== 'string') {
      throw new TypeError(`${at}.body must be a string (sent verbatim)`);
    }
    if (rule.contentType !== undefined && (typeof rule.contentType !== 'string' || rule.contentType === '')) {
      throw new TypeError(`${at}.contentType must be a non-empty string`);
    }
    if (rule.latencyMs !== undefined && !(typeof rule.latencyMs === 'number' && rule.latencyMs >= 0)) {
      throw new TypeError(`${at}.latencyMs must be a number >= 0`);
    }
    if (rule.times !== undefined && !(Number.isInteger(rule.times) && rule.times >= 1)) {
      throw new TypeError(`${at}.times must be an integer >= 1`);
    }
    const m = rule.match;
    if (m !== undefined) {
      if (typeof m !== 'object' || m === null) throw new TypeError(`${at}.match must be an object`);
      if (m.pathRegex !== undefined) {
        try {
          new RegExp(m.pathRegex);
        } catch {
          throw new TypeError(`${at}.match.pathRegex is not a valid regular expression`);
        }
      }
      if (m.query !== undefined && (typeof m.query !== 'object' || m.query === null)) {
        throw new TypeError(`${at}.match.query must be an object of strings`);
      }
    }
    return rule;
  });
}

/**
 * Fault rules in order. For each request the first terminal rule (status, reset, hang) that matches and
 * fires wins; latency rules that fire before it add their delay. Which requests a rule with `rate < 1` hits
 * depends only on the seed and the order of matching requests, so a test run is repeatable.
 */
export class FaultInjector {
  private active: ActiveRule[] = [];
  private rand: () => number;

  constructor(
    rules: FaultRule[] = [],
    private readonly seed = 1,
  ) {
    this.rand = prng(seed);
    this.set(rules);
  }

  set(rules: FaultRule[]): void {
    this.active = validateFaultRules(rules).map((rule) => ({
      rule,
      rate: rule.rate ?? 1,
      regex: rule.match?.pathRegex !== undefined ? new RegExp(rule.match.pathRegex) : undefined,
      left: rule.times ?? Number.POSITIVE_INFINITY,
    }));
    this.rand = prng(this.seed);
  }

  /** The rules still active, with `times` showing what is left of it. */
  list(): FaultRule[] {
    return this.active.map((a) =>
      a.rule.times === undefined ? { ...a.rule } : { ...a.rule, times: a.left },
    );
  }

  decide(
    method: string,
    routeName: string,
    pattern: string,
    rawPath: string,
    query: URLSearchParams,
  ): FaultDecision {
    if (this.active.length === 0) return NONE;
    let latencyMs = 0;
    let terminal: FaultRule | undefined;
    let expired = false;
    for (const a of this.active) {
      if (a.left <= 0 || !matches(a, method, routeName, pattern, rawPath, query)) continue;
      if (a.rate < 1 && this.rand() >= a.rate) continue;
      a.left -= 1;
      if (a.left <= 0) expired = true;
      if (a.rule.kind === 'latency') {
        latencyMs += a.rule.latencyMs ?? 0;
        continue;
      }
      terminal = a.rule;
      break;
    }
    if (expired) this.active = this.active.filter((a) => a.left > 0);
    return latencyMs === 0 && terminal === undefined ? NONE : { latencyMs, terminal };
  }
}

function matches(
  a: ActiveRule,
  method: string,
  routeName: string,
  pattern: string,
  rawPath: string,
  query: URLSearchParams,
): boolean {
  const m = a.rule.match;
  if (!m) return true;
  if (m.method !== undefined && m.method.toUpperCase() !== method) return false;
  if (m.route !== undefined && m.route !== routeName && m.route !== pattern) return false;
  if (a.regex !== undefined && !a.regex.test(rawPath)) return false;
  if (m.query !== undefined) {
    for (const [k, v] of Object.entries(m.query)) if (query.get(k) !== String(v)) return false;
  }
  return true;
}
