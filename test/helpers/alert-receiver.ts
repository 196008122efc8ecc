import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One POST the receiver saw, with the status it answered (null: it never answered). */
export interface ReceivedAlert {
  path: string;
  contentType: string | undefined;
  text: string;
  status: number | null;
}

export interface AlertReceiver {
  /** `http://127.0.0.1:<port>/hook/<secret-looking path>` */
  url: string;
  /** Every request, in order, answered or not. */
  requests: ReceivedAlert[];
  /** The JSON bodies of the requests answered 2xx (the alerts delivered). */
  delivered(): Record<string, unknown>[];
  close(): Promise<void>;
}

/**
 * A loopback webhook receiver (undici's test style: a real `http.createServer().listen(0)` that scripts
 * its answers). `statuses` are answered in order, then 200; `hang: true` never answers at all.
 */
export async function startAlertReceiver(
  options: { statuses?: number[]; hang?: boolean } = {},
): Promise<AlertReceiver> {
  const script = [...(options.statuses ?? [])];
  const requests: ReceivedAlert[] = [];
  const hanging: ServerResponse[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      text += c;
    });
    req.on('end', () => {
      const seen: ReceivedAlert = {
        path: req.url ?? '',
        contentType: req.headers['content-type'],
        text,
        status: null,
      };
      requests.push(seen);
      if (options.hang) {
        hanging.push(res);
        return;
      }
      seen.status = script.shift() ?? 200;
      res.writeHead(seen.status, { 'content-type': 'text/plain' });
      res.end(seen.status < 300 ? 'ok' : 'nope');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook/T000/B000/XsecretPathToken`,
    requests,
    delivered: () =>
      requests
        .filter((r) => r.status !== null && r.status < 300)
        .map((r) => JSON.parse(r.text) as Record<string, unknown>),
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
