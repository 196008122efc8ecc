import type { JobDefinition, JobSet } from '../src/queue/job-definition.js';
import { settleFailedJob } from './failed.js';
import * as remove from './remove.js';
import * as scan from './scan.js';
import * as sync from './sync.js';
import * as syncBatch from './sync-batch.js';
import * as syncHandover from './sync-handover.js';

/**
 * Every job of profile-sync, one file each (its path is its name). Commands and the daemon pass this
 * list to `Engine.create({ jobs: JOBS })`; the engine runs whatever it is handed.
 */
export const JOB_LIST = [
  { name: scan.name, queue: 'scan', handler: scan.handler, options: scan.options },
  { name: sync.name, queue: 'target', handler: sync.handler, options: sync.options },
  { name: syncBatch.name, queue: 'target', handler: syncBatch.handler, options: syncBatch.options },
  { name: syncHandover.name, queue: 'target', handler: syncHandover.handler, options: sync.options },
  { name: remove.name, queue: 'target', handler: remove.handler, options: remove.options },
] as const satisfies readonly (JobDefinition & { options: unknown })[];

export const JOBS: JobSet = { jobs: JOB_LIST, onFailed: settleFailedJob };
