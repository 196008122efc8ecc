import { describe, expect, it } from 'vitest';
import { Router } from '../../../../src/sandbox/kit/router.js';

const h = () => ({ status: 200 });
const router = new Router([
  { method: 'GET', pattern: '/user/:id/profile', handler: h },
  { method: 'PUT', pattern: '/user/:id/profile', handler: h },
  { method: 'GET', pattern: '/user/count', handler: h },
  { method: 'GET', pattern: '/user/:id', handler: h },
]);

describe('Router', () => {
  it('decodes parameters after splitting, so an encoded slash stays in the id', () => {
    const m = router.match('GET', '/user/a%2Fb%20c%3A%C3%A9/profile');
    expect(m).toMatchObject({ kind: 'route', name: 'GET /user/:id/profile', params: { id: 'a/b c:é' } });
  });

  it('prefers routes in the order given (literal before parameter when listed first)', () => {
    expect(router.match('GET', '/user/count')).toMatchObject({ name: 'GET /user/count' });
    expect(router.match('GET', '/user/counts')).toMatchObject({
      name: 'GET /user/:id',
      params: { id: 'counts' },
    });
  });

  it('tells 405 from 404, and a malformed escape from both', () => {
    expect(router.match('DELETE', '/user/x/profile')).toEqual({
      kind: 'method-not-allowed',
      allow: ['GET', 'PUT'],
    });
    expect(router.match('GET', '/nope')).toEqual({ kind: 'none' });
    expect(router.match('GET', '/user//profile')).toEqual({ kind: 'none' });
    expect(router.match('GET', '/user/%E0%A4%A/profile')).toEqual({ kind: 'bad-encoding' });
  });
});
