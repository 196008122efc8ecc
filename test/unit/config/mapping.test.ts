import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileMappings, loadDefaultMappings } from '../../../src/config/mapping.js';
import {
  compileTemplate,
  type MappingOverrides,
  mappingSchema,
  renderTemplate,
  templateProblems,
} from '../../../src/config/mapping-schema.js';
import { ConfigError } from '../../../src/core/config-error.js';
import { RejectedRecordError } from '../../../src/core/errors.js';
import type { SourceUser } from '../../../src/core/types.js';

const FILE = '/etc/profile-sync.yaml';
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function compile(mapping: unknown) {
  return compileMappings({ mapping: mappingSchema.parse(mapping), configFile: FILE });
}

function problems(mapping: unknown): string[] {
  try {
    compile(mapping);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

function shapeProblems(mapping: unknown): string[] {
  const r = mappingSchema.safeParse(mapping);
  expect(r.success).toBe(false);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

const ann: SourceUser = { id: 'u:1/é', firstName: ' Ann ', lastName: 'Lee', email: ' Ann.Lee@Example.ORG ' };

describe('default mapping', () => {
  const m = compileMappings({});

  it('Sunshine: trimmed name, external_id = id, lowercased trimmed email, attributes', () => {
    expect(m.sunshine.map(ann)).toEqual({
      name: 'Ann  Lee',
      'identifiers.external_id': 'u:1/é',
      'identifiers.email': 'ann.lee@example.org',
      'attributes.first_name': ' Ann ',
      'attributes.last_name': 'Lee',
    });
    expect(m.sunshine.fields).toEqual([
      'name',
      'identifiers.external_id',
      'identifiers.email',
      'attributes.first_name',
      'attributes.last_name',
    ]);
  });

  it('Sunshine: omits name and email when empty or absent, attributes when absent', () => {
    expect(m.sunshine.map({ id: 'x', firstName: null, lastName: undefined, email: null })).toEqual({
      'identifiers.external_id': 'x',
    });
    expect(m.sunshine.map({ id: 'x', firstName: '  ', lastName: '', email: '   ' })).toEqual({
      'identifiers.external_id': 'x',
      'attributes.first_name': '  ',
      'attributes.last_name': '',
    });
    expect(m.sunshine.map({ id: 'x', lastName: 'Doe' })).toEqual({
      name: 'Doe',
      'identifiers.external_id': 'x',
      'attributes.last_name': 'Doe',
    });
  });

  it('Zephr and Prelude: first_name, last_name, email as is, absent fields omitted', () => {
    for (const t of ['zephr', 'prelude'] as const) {
      expect(m[t].fields).toEqual(['first_name', 'last_name', 'email']);
      expect(m[t].map(ann)).toEqual({
        first_name: ' Ann ',
        last_name: 'Lee',
        email: ' Ann.Lee@Example.ORG ',
      });
      expect(m[t].map({ id: 'x', email: 'a@b.c', lastName: null })).toEqual({ email: 'a@b.c' });
      expect(m[t].map({ id: 'x', firstName: '' })).toEqual({ first_name: '' });
    }
  });

  it('the defaults file parses with the same schema', () => {
    expect(Object.keys(loadDefaultMappings().sunshine)).toContain('identifiers.external_id');
  });
});

describe('rules and transforms', () => {
  it('from, template, const and every transform', () => {
    const m = compile({
      zephr: {
        upper: { from: 'lastName', transforms: ['uppercase'] },
        lower: { from: 'firstName', transforms: ['trim', 'lowercase'] },
        full: { template: '{lastName}, {firstName} <{email}> {{literal}}' },
        plan: { const: 'gold' },
        vip: { const: true },
        tier: { const: 3 },
        shout: { const: ' hi ', transforms: ['trim', 'uppercase'] },
      },
    }).zephr;
    expect(m.map(ann)).toMatchObject({
      upper: 'LEE',
      lower: 'ann',
      full: 'Lee,  Ann  < Ann.Lee@Example.ORG > {literal}',
      plan: 'gold',
      vip: true,
      tier: 3,
      shout: 'HI',
    });
  });

  it('omit-if-empty looks at the final value, wherever it is listed', () => {
    const m = compile({
      zephr: {
        a: { from: 'firstName', transforms: ['omit-if-empty', 'trim'] },
        b: { from: 'firstName', transforms: ['trim'] },
        c: { template: '{lastName}', transforms: ['omit-if-empty'] },
        d: { template: '{firstName}', transforms: ['omit-if-empty'] },
      },
    }).zephr;
    const out = m.map({ id: 'x', firstName: '   ' });
    expect(out).not.toHaveProperty('a');
    expect(out.b).toBe('');
    expect(out).not.toHaveProperty('c');
    expect(out.d).toBe('   '); // no trim: not empty
  });

  it('a template renders absent fields as empty', () => {
    const m = compile({ prelude: { full: { template: '{firstName}-{lastName}' } } }).prelude;
    expect(m.map({ id: 'x', firstName: 'A' }).full).toBe('A-');
  });

  it('null removes a default field; a new key adds an attribute', () => {
    const m = compile({
      sunshine: { 'attributes.last_name': null, 'attributes.source_system': { const: 'idp' } },
      prelude: { email: null },
    });
    expect(m.sunshine.fields).not.toContain('attributes.last_name');
    expect(m.sunshine.fields).toContain('attributes.source_system');
    expect(m.sunshine.map(ann)['attributes.source_system']).toBe('idp');
    expect(m.prelude.map(ann)).not.toHaveProperty('email');
    expect(m.prelude.fields).toEqual(['first_name', 'last_name']);
  });

  it('an override replaces the default rule', () => {
    const m = compile({ zephr: { email: { from: 'email', transforms: ['trim', 'lowercase'] } } });
    expect(m.zephr.map(ann).email).toBe('ann.lee@example.org');
  });

  it('a Sunshine identifier that maps to an empty value rejects the record, naming the field', () => {
    const m = compile({ sunshine: { 'identifiers.member_id': { from: 'lastName' } } }).sunshine;
    expect(() => m.map({ id: 'u7', lastName: '' })).toThrow(RejectedRecordError);
    try {
      m.map({ id: 'u7', lastName: '' });
    } catch (e) {
      expect((e as RejectedRecordError).userId).toBe('u7');
      expect((e as RejectedRecordError).reason).toContain('identifiers.member_id');
    }
    expect(m.map({ id: 'u7' })).not.toHaveProperty('identifiers.member_id'); // absent: omitted, fine
  });
});

describe('validation (ConfigError naming file, path and fix)', () => {
  it('unknown transform and unknown source path are refused by the schema', () => {
    expect(shapeProblems({ zephr: { a: { from: 'nickname' } } })).toEqual([
      expect.stringMatching(/^zephr\.a\.from: unknown source path "nickname"; use one of: id, firstName/),
    ]);
    expect(shapeProblems({ zephr: { a: { from: 'id', transforms: ['capitalize'] } } })).toEqual([
      expect.stringMatching(/^zephr\.a\.transforms\.0: unknown transform "capitalize"; use one of: trim/),
    ]);
    expect(shapeProblems({ zephr: { a: { template: 'Hi {nick}' } } })[0]).toMatch(
      /unknown source path \{nick\}/,
    );
    expect(shapeProblems({ zephr: { a: { from: 'id', const: 'x' } } })[0]).toMatch(/exactly one of/);
    expect(shapeProblems({ zephr: { a: {} } })[0]).toMatch(/needs one of from, template or const/);
    expect(shapeProblems({ zephr: { a: { form: 'id' } } })[0]).toMatch(/unknown key\(s\) "form"/);
    expect(shapeProblems({ zendesk: {} })[0]).toMatch(/sunshine, zephr and prelude/);
    expect(templateProblems('{firstName')).toEqual([expect.stringMatching(/unbalanced brace/)]);
  });

  it('bad Sunshine key shapes', () => {
    for (const key of [
      'title',
      'identifiers.',
      'identifiers.a:b',
      'attributes.a.b',
      'attributes.has space',
      'profile.x',
    ]) {
      const [msg, ...rest] = problems({ sunshine: { [key]: { const: 'x' } } });
      expect(rest).toEqual([]);
      expect(msg).toMatch(
        new RegExp(`^${esc(FILE)}: mapping\\.sunshine(\\.${esc(key)}|\\[${esc(JSON.stringify(key))}\\]): `),
      );
      expect(msg).toContain('a Sunshine field is name, identifiers.<type> or attributes.<key>');
    }
  });

  it('identifiers.external_id must stay {from: id} and cannot be removed', () => {
    expect(problems({ sunshine: { 'identifiers.external_id': { from: 'email' } } })[0]).toMatch(
      /mapping\.sunshine\["identifiers\.external_id"\]: .*must be \{from: id\}/,
    );
    expect(
      problems({ sunshine: { 'identifiers.external_id': { from: 'id', transforms: ['lowercase'] } } })[0],
    ).toMatch(/without transforms/);
    expect(problems({ sunshine: { 'identifiers.external_id': null } })).toEqual([
      expect.stringMatching(/cannot be removed; delete this line/),
    ]);
  });

  it('Zendesk lowercases email identifiers: the rule must lowercase', () => {
    expect(problems({ sunshine: { 'identifiers.email': { from: 'email' } } })[0]).toMatch(
      /add lowercase to transforms/,
    );
  });

  it('at most 20 identifiers', () => {
    const extra = Object.fromEntries(
      Array.from({ length: 19 }, (_, i) => [`identifiers.t${i}`, { from: 'id' }]),
    );
    expect(problems({ sunshine: extra })).toEqual([
      expect.stringMatching(/21 identifiers, Zendesk allows at most 20/),
    ]);
    const ok = Object.fromEntries(
      Array.from({ length: 18 }, (_, i) => [`identifiers.t${i}`, { from: 'id' }]),
    );
    expect(
      compile({ sunshine: ok }).sunshine.fields.filter((f) => f.startsWith('identifiers.')),
    ).toHaveLength(20);
  });

  it('identifier and name constants must be strings', () => {
    expect(problems({ sunshine: { 'identifiers.n': { const: 5 } } })[0]).toMatch(
      /identifier values are strings/,
    );
    expect(problems({ sunshine: { name: { const: false } } })[0]).toMatch(/name is a string/);
    expect(compile({ sunshine: { 'attributes.n': { const: 5 } } }).sunshine.map(ann)['attributes.n']).toBe(5);
  });

  it('Prelude: strings only and no reserved key', () => {
    expect(problems({ prelude: { tier: { const: 3 } } })).toEqual([
      `${FILE}: mapping.prelude.tier: Prelude profile values are strings only (seed 004 additionalProperties: string); quote the constant`,
    ]);
    expect(problems({ prelude: { vip: { const: true } } })[0]).toMatch(/strings only/);
    for (const key of ['sub', 'iat', 'user_id', 'created_at', 'prelude_x', '_private']) {
      expect(problems({ prelude: { [key]: { from: 'id' } } })).toEqual([
        expect.stringMatching(new RegExp(`^${FILE}: mapping\\.prelude\\.${key}: .*reserved|may not start`)),
      ]);
    }
    expect(
      compile({ prelude: { tier: { const: '3' }, subscriber: { from: 'id' } } }).prelude.map(ann).tier,
    ).toBe('3');
  });

  it('Zephr and Prelude field names', () => {
    expect(problems({ zephr: { 'a.b': { from: 'id' } } })[0]).toMatch(/zephr field name is letters/);
  });

  it('lists every problem at once', () => {
    expect(
      problems({ prelude: { tier: { const: 3 }, sub: { from: 'id' } }, zephr: { 'a b': { from: 'id' } } }),
    ).toHaveLength(3);
  });

  it('a broken defaults file names itself', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ps-map-'));
    const defaultsFile = join(dir, 'mapping.default.yaml');
    writeFileSync(defaultsFile, 'zephr:\n  a: { from: nick }\n');
    expect(() => compileMappings({} as { mapping?: MappingOverrides }, { defaultsFile })).toThrow(
      /mapping\.default\.yaml: zephr\.a\.from: unknown source path/,
    );
  });
});

describe('compileTemplate (issue 11.4: templates split once)', () => {
  it('renders exactly what renderTemplate renders', () => {
    const values: Record<string, string | undefined> = {
      firstName: 'Ann',
      lastName: undefined,
      email: 'a@x',
      id: '7',
    };
    const get = (p: string) => values[p];
    for (const t of [
      '{firstName} {lastName}',
      '{lastName}, {firstName} <{email}> {{literal}}',
      'plain',
      '{{{id}}}',
      '}}{{',
      '{id}{id}',
      '{email}',
      'x{firstName}y{lastName}z',
    ])
      expect(compileTemplate(t)(get as never)).toBe(renderTemplate(t, get as never));
  });
});
