import type { Counters, LoggedRequest } from './types.js';

/**
 * Counters by route and status plus a ring buffer of the last `capacity` requests, kept in parallel arrays
 * so that logging is O(1) and allocates nothing per request. The log is how a test proves that N workers
 * never sent more than L requests in a minute.
 */
export class RequestLog {
  private readonly t: Float64Array;
  private readonly status: Uint16Array;
  private readonly method: string[];
  private readonly route: string[];
  private readonly credential: string[];
  private next = 0;
  private size = 0;
  private byRoute = new Map<string, Map<number, number>>();
  private total = 0;

  constructor(readonly capacity = 200_000) {
    this.t = new Float64Array(capacity);
    this.status = new Uint16Array(capacity);
    this.method = new Array<string>(capacity);
    this.route = new Array<string>(capacity);
    this.credential = new Array<string>(capacity);
  }

  /** `routeName` is `${method} ${pattern}`; `status` 0 stands for no answer (a reset or a hang). */
  record(t: number, method: string, routeName: string, status: number, credential: string): void {
    let byStatus = this.byRoute.get(routeName);
    if (!byStatus) {
      byStatus = new Map();
      this.byRoute.set(routeName, byStatus);
    }
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    this.total += 1;
    const i = this.next;
    this.t[i] = t;
    this.status[i] = status;
    this.method[i] = method;
    this.route[i] = routeName;
    this.credential[i] = credential;
    this.next = (i + 1) % this.capacity;
    if (this.size < this.capacity) this.size += 1;
  }

  counters(): Counters {
    const byRoute: Counters['byRoute'] = {};
    for (const [route, byStatus] of this.byRoute) {
      byRoute[route] = Object.fromEntries([...byStatus].map(([s, n]) => [String(s), n]));
    }
    return { byRoute, total: this.total };
  }

  /** Entries with `t >= since`, oldest first. */
  since(since = 0): LoggedRequest[] {
    const out: LoggedRequest[] = [];
    const start = (this.next - this.size + this.capacity) % this.capacity;
    for (let k = 0; k < this.size; k++) {
      const i = (start + k) % this.capacity;
      if (this.t[i]! < since) continue;
      out.push({
        t: this.t[i]!,
        method: this.method[i]!,
        route: this.route[i]!,
        status: this.status[i]!,
        credential: this.credential[i]!,
      });
    }
    return out;
  }

  /** Clears the counters and the log. */
  clear(): void {
    this.byRoute = new Map();
    this.total = 0;
    this.next = 0;
    this.size = 0;
  }
}
