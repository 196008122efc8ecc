import { describe, expect, it } from 'vitest';
import { sandboxOptions } from '../../../src/commands/sandbox.js';
import { ConfigError } from '../../../src/core/config-error.js';

const base = { port: '4100', users: '1000', seed: '1', host: '127.0.0.1' };

describe('profile-sync sandbox --prelude-ids', () => {
  it('is left to the default (usr) unless given; takes usr or source', () => {
    expect(sandboxOptions(base).preludeIds).toBeUndefined();
    expect(sandboxOptions({ ...base, preludeIds: 'usr' }).preludeIds).toBe('usr');
    expect(sandboxOptions({ ...base, preludeIds: 'source' }).preludeIds).toBe('source');
  });

  it('refuses anything else, naming the flag', () => {
    for (const bad of ['', 'USR', 'external_id']) {
      expect(() => sandboxOptions({ ...base, preludeIds: bad })).toThrow(ConfigError);
      expect(() => sandboxOptions({ ...base, preludeIds: bad })).toThrow(/--prelude-ids/);
    }
  });
});
