import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { type Sandbox, startSandbox } from '../../../src/sandbox/index.js';
import { simUrl } from '../../../src/sandbox/kit/server.js';

// `profile-sync sandbox --host 0.0.0.0` is what the compose `sandbox` service runs (docker-compose.yml):
// the simulators must listen on every interface, and the URLs they print must still be ones a client
// connects to and that profile-sync's config accepts (plain http only on loopback).

let sandbox: Sandbox | undefined;
afterEach(async () => {
  await sandbox?.close();
  sandbox = undefined;
});

async function status(url: string): Promise<number> {
  const res = await request(`${url}/__sandbox/counters`);
  await res.body.dump();
  return res.statusCode;
}

describe('sandbox bound to a wildcard address', () => {
  it('listens on every interface and prints loopback URLs that profile-sync accepts', async () => {
    sandbox = await startSandbox({ host: '0.0.0.0', port: 0, users: 3 });
    for (const url of Object.values(sandbox.urls)) expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // 127.0.0.2 is another address of this machine: only a wildcard bind answers there.
    for (const sim of Object.values(sandbox.sims)) {
      expect(await status(sim.url)).toBe(200);
      expect(await status(`http://127.0.0.2:${sim.port}`)).toBe(200);
    }
    const config = loadConfig({ ...sandbox.env, REDIS_URL: 'redis://127.0.0.1:6379' });
    expect(config.source.url).toBe(sandbox.urls.source);
    expect(Object.keys(config.targets).sort()).toEqual(['prelude', 'sunshine', 'zephr']);
  });

  it('a loopback bind does not answer on another address (so the test above can fail)', async () => {
    sandbox = await startSandbox({ host: '127.0.0.1', port: 0, users: 1 });
    await expect(status(`http://127.0.0.2:${sandbox.sims.source.port}`)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('names loopback for wildcard binds and keeps any other host', () => {
    expect(simUrl('0.0.0.0', 4100)).toBe('http://127.0.0.1:4100');
    expect(simUrl('::', 4100)).toBe('http://[::1]:4100');
    expect(simUrl('::1', 4100)).toBe('http://[::1]:4100');
    expect(simUrl('127.0.0.1', 4100)).toBe('http://127.0.0.1:4100');
    expect(simUrl('sandbox.local', 80)).toBe('http://sandbox.local:80');
  });
});
