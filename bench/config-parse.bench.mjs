// Issue 8.10: reading a PROFILE_SYNC_CONFIG with many mapping keys must take linear time. Measures the
// CPU time of loadConfig() (parse, duplicate-key check, env substitution, schema, mapping compile) for
// 10k..80k keys, and, for comparison, yaml's own `uniqueKeys: true` check (what the loader used
// before: it compares each key with every earlier key of its map) on the same text.
// Run on its own: `npm run build && node bench/config-parse.bench.mjs`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { loadConfig } from '../dist/src/config/load.js';
import { writeResult } from './lib/report.mjs';

const dir = mkdtempSync(join(tmpdir(), 'ps-bench-config-'));
const file = join(dir, 'config.yaml');
const env = {
  SOURCE_URL: 'http://127.0.0.1:1',
  SOURCE_USERNAME: 'u',
  SOURCE_PASSWORD: 'p',
  ZEPHR_URL: 'http://127.0.0.1:2',
  ZEPHR_APP_ID: 'app',
  ZEPHR_JWT_SECRET: 's',
  PROFILE_SYNC_CONFIG: file,
};
const cpuMs = (fn) => {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return Math.round((c.user + c.system) / 1000);
};

const metrics = [];
for (const n of [10_000, 20_000, 40_000, 80_000]) {
  const lines = ['mapping:', '  zephr:'];
  for (let i = 0; i < n; i++) lines.push(`    f${i}: { from: email }`);
  const text = lines.join('\n');
  writeFileSync(file, text);
  metrics.push({
    name: `loadConfig, ${n} mapping keys (cpu)`,
    value: cpuMs(() => loadConfig(env)),
    unit: 'ms',
    better: 'lower',
  });
  if (n <= 40_000)
    metrics.push({
      name: `yaml uniqueKeys:true parse (the old check), ${n} keys (cpu)`,
      value: cpuMs(() => parseDocument(text, { uniqueKeys: true })),
      unit: 'ms',
      better: 'lower',
    });
}
rmSync(dir, { recursive: true, force: true });
writeResult({
  name: 'config-parse',
  description: 'PROFILE_SYNC_CONFIG with many mapping keys: CPU time of loadConfig (linear since issue 8.10)',
  metrics,
  notes: ['The old check (yaml uniqueKeys: true) is quadratic; it is shown up to 40k keys only.'],
});
