import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { closeConnectors, createTargetConnectors } from '../../../src/connectors/registry.js';
import { createLogger } from '../../../src/log.js';
import { recordingAgent } from '../../helpers/recording-agent.js';

const logger = createLogger({ level: 'silent' });
const BASE = { SOURCE_URL: 'https://id.example.test', SOURCE_TOKEN: 't' };

describe('target registry', () => {
  it('builds a connector exactly for each target whose URL is set, with its rate limit', async () => {
    const config = loadConfig({
      ...BASE,
      SUNSHINE_URL: 'https://acme.zendesk.test',
      SUNSHINE_EMAIL: 'a@b.c',
      SUNSHINE_API_TOKEN: 'x',
      SUNSHINE_PLAN: 'enterprise',
      PRELUDE_URL: 'https://api.prelude.test',
      PRELUDE_APP_ID: 'app',
      PRELUDE_API_KEY: 'k',
      PRELUDE_RATE_LIMIT: '300',
    });
    const connectors = createTargetConnectors(config, { logger });
    expect(Object.keys(connectors).sort()).toEqual(['prelude', 'sunshine']);
    expect(connectors.sunshine!.limits.requestsPerMinute).toBe(700);
    expect(connectors.prelude!.limits.requestsPerMinute).toBe(300);
    expect(Object.keys(createTargetConnectors(config, { logger }, { only: ['prelude'] }))).toEqual([
      'prelude',
    ]);
    await closeConnectors(connectors);
  });

  it("awaits the engine's per-target throttle before every request", async () => {
    const config = loadConfig({
      ...BASE,
      ZEPHR_URL: 'https://zephr.test',
      ZEPHR_APP_ID: 'app',
      ZEPHR_JWT_SECRET: 'secret',
      // Merge mode: a write is two requests (GET + PUT), each of which must wait for the throttle.
      ZEPHR_WRITE_MODE: 'merge',
    });
    const { agent, requests } = recordingAgent('https://zephr.test', () => ({ status: 404, body: {} }));
    let throttled = 0;
    const { zephr } = createTargetConnectors(
      config,
      { logger, dispatcher: agent },
      {
        throttles: {
          zephr: async () => {
            throttled++;
            expect(requests).toHaveLength(throttled - 1);
          },
        },
      },
    );
    await zephr!
      .write({ userId: 'u1', user: { id: 'u1', firstName: 'A' }, previous: null, next: { first_name: 'A' } })
      .catch(() => undefined);
    expect(requests.map((r) => r.method)).toEqual(['GET', 'PUT']);
    expect(throttled).toBe(2);
  });
});
