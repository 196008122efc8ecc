import { MockAgent } from 'undici';

/** One request as the vendor would have received it. */
export interface Recorded {
  method: string;
  /** Path and query exactly as sent (percent-encoding included). */
  path: string;
  headers: Record<string, string>;
  /** Parsed JSON body, or undefined. */
  body: unknown;
  rawBody?: string;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * An undici MockAgent for one origin that records every request and answers from a script: each call
 * of `respond` gets the request and returns the reply. Request-shape tests assert on `requests`.
 */
export function recordingAgent(origin: string, respond: (req: Recorded, index: number) => Reply) {
  const agent = new MockAgent();
  agent.disableNetConnect();
  const requests: Recorded[] = [];
  agent
    .get(origin)
    .intercept({ path: () => true, method: () => true })
    .reply((opts) => {
      const raw = opts.headers ?? {};
      const headers: Record<string, string> = {};
      const entries: [string, unknown][] = Array.isArray(raw)
        ? (raw as string[]).flatMap((_, i, a) =>
            i % 2 === 0 ? [[a[i]!, a[i + 1]] as [string, unknown]] : [],
          )
        : Object.entries(raw as Record<string, unknown>);
      for (const [k, v] of entries) headers[k.toLowerCase()] = String(v);
      const rawBody = typeof opts.body === 'string' ? opts.body : undefined;
      const req: Recorded = {
        method: opts.method,
        path: opts.path,
        headers,
        body: rawBody ? JSON.parse(rawBody) : undefined,
        rawBody,
      };
      requests.push(req);
      const r = respond(req, requests.length - 1);
      return {
        statusCode: r.status,
        data: r.body === undefined ? '' : JSON.stringify(r.body),
        responseOptions: { headers: { 'content-type': 'application/json', ...r.headers } },
      };
    })
    .persist();
  return { agent, requests };
}
