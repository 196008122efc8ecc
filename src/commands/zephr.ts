import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { zephrJwks } from '../connectors/zephr/jwks.js';
import { ConfigError } from '../core/config-error.js';

/** What `zephr jwks` and `/.well-known/jwks.json` say for a tenant configured with a shared secret. */
export const HS256_NO_JWKS =
  'Zephr is configured with a shared HS256 secret (ZEPHR_JWT_SECRET): there is no public key to publish. ' +
  'Set ZEPHR_JWT_PRIVATE_KEY (an RSA or EC P-256 PEM key) for RS256/ES256 and give Zephr the printed JWK set.';

/**
 * Issue 12.6: `profile-sync zephr jwks` prints the JWK set Zephr verifies our tokens with: the current
 * key and, during a rotation, the next one (public parts only, each with its kid). Exit 1 for HS256
 * (nothing to publish), 2 when Zephr is not configured or a key is unreadable (naming the variable).
 */
export function registerZephr(program: Command): void {
  const zephr = program.command('zephr').description("Zephr's JWT keys");
  zephr
    .command('jwks')
    .description(
      'Print the JWK set (public keys, with kid) of ZEPHR_JWT_PRIVATE_KEY and ZEPHR_JWT_NEXT_PRIVATE_KEY, for the Zephr tenant',
    )
    .action(async () => {
      const jwt = loadConfig().targets.zephr?.jwt;
      if (!jwt) throw new ConfigError('ZEPHR_URL: not set, so Zephr is not enabled and has no key');
      const jwks = await zephrJwks(jwt);
      if (!jwks) {
        process.stderr.write(`profile-sync: ${HS256_NO_JWKS}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`${JSON.stringify(jwks, null, 2)}\n`);
    });
}
