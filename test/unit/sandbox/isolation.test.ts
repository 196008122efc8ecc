import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { specifiers, tsFiles } from '../../helpers/imports.js';

// CONTRACT: the simulators are written from the seed documents alone and share no code with the
// connectors or the mapping (a bug they shared would pass its own tests).
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const sandboxDir = join(root, 'src', 'sandbox');

/** Relative imports that leave src/sandbox/, as `file: specifier`. */
function escapes(file: string, source: string): string[] {
  return specifiers(source)
    .filter((s) => s.startsWith('.'))
    .filter((s) => {
      const target = resolve(dirname(file), s);
      return target !== sandboxDir && !target.startsWith(sandboxDir + sep);
    })
    .map((s) => `${relative(root, file)}: ${s}`);
}

describe('src/sandbox isolation', () => {
  it('finds the import forms it checks', () => {
    const src = [
      "import { a } from '../../config/schema.js';",
      "import type { B } from './kit/types.js';",
      "export { c } from '../connectors/x.js';",
      "import '../side-effect.js';",
      "const m = await import('../../pipeline/diff.js');",
      "import {\n  d,\n  e,\n} from 'jose';",
    ].join('\n');
    expect(specifiers(src).sort()).toEqual(
      [
        '../../config/schema.js',
        './kit/types.js',
        '../connectors/x.js',
        '../side-effect.js',
        '../../pipeline/diff.js',
        'jose',
      ].sort(),
    );
    const fake = join(sandboxDir, 'source', 'x.ts');
    expect(escapes(fake, src)).toEqual([
      'src/sandbox/source/x.ts: ../../config/schema.js',
      'src/sandbox/source/x.ts: ../../pipeline/diff.js',
    ]);
  });

  it('no file under src/sandbox imports from src/ outside src/sandbox', () => {
    const files = tsFiles(sandboxDir);
    expect(files.length).toBeGreaterThan(10);
    const bad = files.flatMap((f) => escapes(f, readFileSync(f, 'utf8')));
    expect(bad).toEqual([]);
  });
});
