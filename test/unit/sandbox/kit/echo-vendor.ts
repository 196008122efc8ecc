import {
  bearerToken,
  INVALID_JSON,
  type SimResponse,
  type Vendor,
} from '../../../../src/sandbox/kit/index.js';

/** A minimal vendor for kit tests: bearer token = credential; echoes what the kit gave the handler. */
export function echoVendor(): Vendor & { resets: number } {
  const v = {
    name: 'source' as const,
    resets: 0,
    routes: [
      {
        method: 'GET',
        pattern: '/items/:id',
        handler: (req: { params: Record<string, string>; credential: string }): SimResponse => ({
          status: 200,
          body: { id: req.params.id, credential: req.credential },
        }),
      },
      {
        method: 'PUT',
        pattern: '/items/:id',
        handler: (req: { body: unknown }): SimResponse => ({
          status: 200,
          body: {
            invalid: req.body === INVALID_JSON,
            body: req.body === INVALID_JSON ? null : (req.body ?? null),
          },
        }),
      },
      {
        method: 'GET',
        pattern: '/boom',
        handler: (): SimResponse => {
          throw new Error('kaboom');
        },
      },
    ],
    authenticate: (req: { headers: import('node:http').IncomingHttpHeaders }) => {
      const token = bearerToken(req.headers);
      return token ? { credential: token } : { status: 401, body: { err: 'unauthorized' } };
    },
    tooManyRequests: (retryAfter: number, limit: number, remaining: number): SimResponse => ({
      status: 429,
      body: { err: 'slow down' },
      headers: {
        'retry-after': String(retryAfter),
        'x-limit': String(limit),
        'x-remaining': String(remaining),
      },
    }),
    errorResponse: (status: number, message: string): SimResponse => ({ status, body: { err: message } }),
    state: () => ({ resets: v.resets }),
    reset: () => {
      v.resets += 1;
    },
  };
  return v;
}
