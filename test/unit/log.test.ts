import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...chunk.toString().trim().split('\n'));
      cb();
    },
  });
  return { lines, stream };
}

describe('logger', () => {
  it('censors every secret the config can hold', () => {
    const { lines, stream } = capture();
    const log = createLogger({ destination: stream });
    log.info(
      {
        config: {
          source: { password: 'pw-1', token: 'tok-1' },
          targets: {
            sunshine: { apiToken: 'zd-1' },
            zephr: { jwt: { secret: 'jwt-1', privateKey: 'pem-1' } },
            prelude: { apiKey: 'pk-1' },
          },
        },
        headers: { authorization: 'Basic abc', 'x-zephr-jwt': 'eyJ' },
      },
      'hello',
    );
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    for (const secret of ['pw-1', 'tok-1', 'zd-1', 'jwt-1', 'pem-1', 'pk-1', 'Basic abc', 'eyJ']) {
      expect(line).not.toContain(secret);
    }
    expect(JSON.parse(line).msg).toBe('hello');
  });

  it('censors the ops API token and the alert webhook URL (issue 12.2, 12.3)', () => {
    const { lines, stream } = capture();
    const log = createLogger({ destination: stream });
    log.info(
      {
        config: {
          ops: { apiToken: 'api-tok-1', dashboardToken: 'dash-1' },
          alerts: { webhookUrl: 'https://hooks.example/T/B/hook-secret-1' },
        },
      },
      'hello',
    );
    log.info({ webhookUrl: 'https://hooks.example/hook-secret-2', apiToken: 'api-tok-2' }, 'flat');
    for (const secret of ['api-tok-1', 'dash-1', 'hook-secret-1', 'hook-secret-2', 'api-tok-2'])
      expect(lines.join('\n')).not.toContain(secret);
  });
});
