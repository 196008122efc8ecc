import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Harness } from './harness.js';
import { inspect } from './harness.js';

/** Polls `fn` until it returns something other than undefined/false; fails naming `what` after `ms`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Source user ids that the sandbox's Prelude app knows (and those it does not), from its inspection API. */
export async function preludeKnown(
  h: Harness,
  ids: string[],
): Promise<{ known: string[]; unknown: string[] }> {
  const known: string[] = [];
  const unknown: string[] = [];
  for (const id of ids) {
    const r = await inspect<{ known: boolean }>(h.sandbox.urls.prelude, `users/${encodeURIComponent(id)}`);
    (r.known ? known : unknown).push(id);
  }
  return { known, unknown };
}

/** The `usr_` id of the Prelude user whose external_id is this source id (the sandbox's default ids). */
export async function preludeUsr(h: Harness, sourceId: string): Promise<string> {
  const r = await inspect<{ user?: { id: string } }>(
    h.sandbox.urls.prelude,
    `users/${encodeURIComponent(sourceId)}`,
  );
  if (!r.user) throw new Error(`Prelude has no user with external_id ${sourceId}`);
  return r.user.id;
}

/** Sunshine profiles written by profile-sync, by external id (from the simulator's own state). */
export async function sunshineExternalIds(h: Harness): Promise<string[]> {
  const state = await inspect<{
    profiles: { source: string; identifiers: { type: string; value: string }[] }[];
  }>(h.sandbox.urls.sunshine, 'state');
  return state.profiles
    .filter((p) => p.source === 'identity')
    .map((p) => p.identifiers.find((i) => i.type === 'external_id')?.value ?? '');
}

/**
 * A loopback proxy in front of a simulator. `decide(req, n)` sees each request (n counts the requests
 * that matched nothing special so far) and returns a status to answer itself, or undefined to forward.
 */
export interface Proxy {
  url: string;
  answered: number;
  close(): Promise<void>;
}

export async function startProxy(
  target: string,
  decide: (req: IncomingMessage) => { status: number; body: unknown } | undefined,
): Promise<Proxy> {
  const proxy: Proxy = { url: '', answered: 0, close: async () => undefined };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const own = decide(req);
    if (own) {
      proxy.answered++;
      // Read the request body first: answering a PUT before its body arrived can stall the client.
      req.resume();
      req.on('end', () => {
        res.writeHead(own.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(own.body));
      });
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(
          ([k, v]) => typeof v === 'string' && k !== 'host' && k !== 'connection' && k !== 'content-length',
        ),
      ) as Record<string, string>;
      fetch(`${target}${req.url}`, {
        method: req.method ?? 'GET',
        headers,
        ...(chunks.length ? { body: Buffer.concat(chunks) } : {}),
      }).then(
        async (r) => {
          const body = Buffer.from(await r.arrayBuffer());
          const out: Record<string, string> = {};
          r.headers.forEach((v, k) => {
            if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection') out[k] = v;
          });
          res.writeHead(r.status, out);
          res.end(body);
        },
        () => {
          res.destroy();
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}
