import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { maskConfig } from '../../../src/commands/config.js';
import { loadConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/config-error.js';
import { opsListen } from '../../../src/http/server.js';
import { createLogger } from '../../../src/log.js';

const BASE = { SOURCE_URL: 'http://127.0.0.1:4100' };
const TOKEN = 'a-dashboard-token-of-32-chars-xx';

describe('OPS_* configuration', () => {
  it('defaults: port 9464 on loopback, no token, read-only dashboard', () => {
    const c = loadConfig(BASE);
    expect(c.ops).toEqual({ port: 9464, host: '127.0.0.1', dashboardReadOnly: true });
    expect(opsListen(c)).toEqual({ host: '127.0.0.1', port: 9464 });
  });

  it('reads OPS_PORT, OPS_HOST, OPS_DASHBOARD_TOKEN, OPS_DASHBOARD_READ_ONLY; OPS_PORT=0 disables', () => {
    const c = loadConfig({
      ...BASE,
      OPS_PORT: '9100',
      OPS_HOST: '0.0.0.0',
      OPS_DASHBOARD_TOKEN: TOKEN,
      OPS_DASHBOARD_READ_ONLY: 'false',
    });
    expect(c.ops).toEqual({ port: 9100, host: '0.0.0.0', dashboardToken: TOKEN, dashboardReadOnly: false });
    expect(opsListen(loadConfig({ ...BASE, OPS_PORT: '0' }))).toBeNull();
  });

  it('refuses a short token or a bad port, naming the variable and never quoting the token', () => {
    let err: unknown;
    try {
      loadConfig({ ...BASE, OPS_DASHBOARD_TOKEN: 'short-secret', OPS_PORT: '70000' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/OPS_DASHBOARD_TOKEN: use at least 16 characters/);
    expect(msg).toMatch(/OPS_PORT: /);
    expect(msg).not.toContain('short-secret');
  });

  it('`config check` prints the token masked', () => {
    const shown = JSON.stringify(maskConfig(loadConfig({ ...BASE, OPS_DASHBOARD_TOKEN: TOKEN })));
    expect(shown).not.toContain(TOKEN);
    expect(shown).toContain('"dashboardToken":"****xx"');
  });

  it('the token is censored in log lines, with the whole config or alone', () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const log = createLogger({ destination: stream });
    const config = loadConfig({ ...BASE, OPS_DASHBOARD_TOKEN: TOKEN });
    log.info({ config }, 'config');
    log.info({ ops: config.ops }, 'ops');
    log.info({ dashboardToken: TOKEN }, 'bare');
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(l).not.toContain(TOKEN);
    expect(lines[0]).toContain('[redacted]');
  });
});
