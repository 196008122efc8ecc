import { SignJWT } from 'jose';
import { basic, call } from './http.js';

/** Calls each service once with the credentials from `env`, as a client configured from it would. */
export async function callEachService(env: Record<string, string>): Promise<Record<string, number>> {
  const source = await call(env.SOURCE_URL!, 'GET', '/user/count', {
    headers: basic(env.SOURCE_USERNAME!, env.SOURCE_PASSWORD!),
  });
  const sunshine = await call(
    env.SUNSHINE_URL!,
    'GET',
    '/api/v2/user_profiles?identifier=identity:user:id:user-000001',
    {
      headers: basic(`${env.SUNSHINE_EMAIL}/token`, env.SUNSHINE_API_TOKEN!),
    },
  );
  const jwt = await new SignJWT({ sub: 'user-000001', exp: Math.floor(Date.now() / 1000) + 60 })
    .setProtectedHeader({ alg: 'HS256' })
    .sign(new TextEncoder().encode(env.ZEPHR_JWT_SECRET!));
  const zephr = await call(env.ZEPHR_URL!, 'PUT', `/blaize/profile/${env.ZEPHR_APP_ID}`, {
    headers: { authorization: `Bearer ${jwt}` },
    json: { first_name: 'Anna' },
  });
  // Prelude does not know some users on purpose; make sure it knows this one. As the client does with
  // the sandbox's default `usr` ids (the real service's): find the user's `usr_` id by external_id,
  // then PATCH there.
  await call(env.PRELUDE_URL!, 'PUT', '/__sandbox/users/user-000001');
  const auth = { authorization: `Bearer ${env.PRELUDE_API_KEY}` };
  const found = await call(
    env.PRELUDE_URL!,
    'POST',
    `/v2/session/apps/${env.PRELUDE_APP_ID}/users/batch_lookup`,
    {
      headers: auth,
      json: { external_ids: ['user-000001'] },
    },
  );
  const usr = (found.body as { users?: { id: string }[] } | undefined)?.users?.[0]?.id ?? 'user-000001';
  const prelude = await call(
    env.PRELUDE_URL!,
    'PATCH',
    `/v2/session/apps/${env.PRELUDE_APP_ID}/users/${encodeURIComponent(usr)}/profile`,
    { headers: auth, json: { profile: { first_name: 'Anna' } } },
  );
  return { source: source.status, sunshine: sunshine.status, zephr: zephr.status, prelude: prelude.status };
}
