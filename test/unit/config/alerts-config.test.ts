import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/config-error.js';

const base = { SOURCE_URL: 'http://127.0.0.1:4100', SOURCE_USERNAME: 'u', SOURCE_PASSWORD: 'p' };

function problem(env: Record<string, string>): string {
  try {
    loadConfig({ ...base, ...env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  return '';
}

describe('ALERT_WEBHOOK_URL, OPS_PUBLIC_URL, OPS_API_TOKEN (issue 12)', () => {
  it('accepts https anywhere and http on loopback only', () => {
    expect(problem({ ALERT_WEBHOOK_URL: 'https://hooks.slack.com/services/T/B/x' })).toBe('');
    expect(problem({ ALERT_WEBHOOK_URL: 'http://127.0.0.1:9/hook' })).toBe('');
    expect(problem({ ALERT_WEBHOOK_URL: 'http://localhost:9/hook' })).toBe('');
    const c = loadConfig({
      ...base,
      ALERT_WEBHOOK_URL: 'https://h.example/x',
      OPS_PUBLIC_URL: 'https://ops.example',
    });
    expect(c.alerts.webhookUrl).toBe('https://h.example/x');
    expect(c.ops.publicUrl).toBe('https://ops.example');
  });

  it.each([
    ['http://example.com/hook', /ALERT_WEBHOOK_URL: plain http:\/\/ is allowed only on loopback/],
    ['ftp://example.com/hook', /ALERT_WEBHOOK_URL: must be an http\(s\) URL/],
    ['garbage', /ALERT_WEBHOOK_URL: must be an http\(s\) URL/],
  ])('refuses %s naming the variable', (value, message) => {
    expect(problem({ ALERT_WEBHOOK_URL: value })).toMatch(message);
  });

  it('a short OPS_API_TOKEN and a bad OPS_PUBLIC_URL are refused by name', () => {
    expect(problem({ OPS_API_TOKEN: 'short' })).toMatch(/OPS_API_TOKEN: use at least 16 characters/);
    expect(problem({ OPS_PUBLIC_URL: 'not a url' })).toMatch(/OPS_PUBLIC_URL: must be an http\(s\) URL/);
  });
});
