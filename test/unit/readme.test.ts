import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ENV_PATHS } from '../../src/config/load.js';

// The README's configuration table is the operator's reference: a variable the code reads but the
// README does not name is a setting nobody can find at 3 a.m.
describe('README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  it('documents every environment variable the config reads', () => {
    const missing = Object.keys(ENV_PATHS).filter((name) => !readme.includes(`\`${name}\``));
    expect(missing).toEqual([]);
  });

  it('names the install and test commands', () => {
    expect(readme).toContain('npm ci');
    expect(readme).toContain('npm test');
    expect(readme).toContain('npm run demo');
  });
});
