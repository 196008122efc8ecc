#!/usr/bin/env node
// `npm run bench`: runs every bench/*.bench.mjs in turn, each in its own process, then writes
// bench/results/<name>.json (one per benchmark, with the machine it ran on) and bench/results/README.md
// (a markdown table of the latest figures of every benchmark).
//
// Adding a benchmark: create bench/<name>.bench.mjs that does its work and calls writeResult() from
// bench/lib/report.mjs with {name, description, metrics: [{name, value, unit, better?, detail?}], notes?}.
// `npm run bench -- <substring>` runs only the benchmarks whose file name contains it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { arch, cpus, platform, release, tmpdir, totalmem } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const benchDir = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(benchDir, 'results');
const filter = process.argv[2] ?? '';

const machine = {
  cpus: cpus().length,
  cpu: cpus()[0]?.model ?? 'unknown',
  memoryGb: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  os: `${platform()} ${release()} ${arch()}`,
};

const files = readdirSync(benchDir)
  .filter((f) => f.endsWith('.bench.mjs') && f.includes(filter))
  .sort();
if (files.length === 0) {
  console.error(`no bench/*.bench.mjs matches '${filter}'`);
  process.exit(1);
}

const tmp = mkdtempSync(join(tmpdir(), 'bench-'));
let failed = 0;
for (const file of files) {
  const out = join(tmp, `${basename(file)}.json`);
  console.error(`\n=== ${file}`);
  const startedAt = new Date().toISOString();
  try {
    execFileSync(process.execPath, [join(benchDir, file)], {
      stdio: 'inherit',
      env: { ...process.env, BENCH_RESULT: out },
    });
    const result = JSON.parse(readFileSync(out, 'utf8'));
    writeFileSync(
      join(resultsDir, `${result.name}.json`),
      `${JSON.stringify({ ...result, startedAt, machine }, null, 2)}\n`,
    );
  } catch (err) {
    failed += 1;
    console.error(`${file} failed: ${err.message}`);
  }
}
rmSync(tmp, { recursive: true, force: true });

// The table covers every result on disk, so running one benchmark keeps the others' latest figures.
const results = readdirSync(resultsDir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(resultsDir, f), 'utf8')));
const lines = [
  '# Benchmark results',
  '',
  'Written by `npm run bench` (bench/run.mjs); each row is the latest run of its benchmark.',
  '',
];
for (const r of results) {
  const m = r.machine;
  lines.push(
    `## ${r.name}`,
    '',
    r.description,
    '',
    `Ran ${r.startedAt} on ${m.cpus} x ${m.cpu}, ${m.memoryGb} GB, Node ${m.node}, ${m.os}.`,
    '',
  );
  lines.push('| metric | value | unit |', '| --- | ---: | --- |');
  for (const metric of r.metrics)
    lines.push(`| ${metric.name} | ${metric.value.toLocaleString('en-US')} | ${metric.unit} |`);
  lines.push('');
  for (const note of r.notes ?? []) lines.push(`- ${note}`);
  if (r.notes?.length) lines.push('');
}
writeFileSync(join(resultsDir, 'README.md'), lines.join('\n'));
console.error(`\nresults: ${join('bench', 'results')}/ (${results.length} benchmark(s))`);
process.exit(failed ? 1 : 0);
