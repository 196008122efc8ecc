// The one way a benchmark hands its figures to bench/run.mjs: writeResult() writes them as JSON to the
// file named by BENCH_RESULT (set by run.mjs), or prints them when the benchmark is run on its own.
import { writeFileSync } from 'node:fs';

/**
 * @typedef {{ name: string, value: number, unit: string, better?: 'higher' | 'lower', detail?: object }} Metric
 * @typedef {{ name: string, description: string, metrics: Metric[], notes?: string[] }} BenchResult
 */

/** @param {BenchResult} result */
export function writeResult(result) {
  const file = process.env.BENCH_RESULT;
  const json = JSON.stringify(result, null, 2);
  if (file) writeFileSync(file, json);
  else process.stdout.write(`${json}\n`);
}
