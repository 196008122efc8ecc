import type { Engine } from '../queue/engine.js';

/**
 * What the operations surface reads from the engine: its queues, run records, Redis connection and
 * layout. Read-only by construction; nothing here enqueues or changes a job (except bull-board when
 * an operator turns `OPS_DASHBOARD_READ_ONLY` off).
 */
export type OpsEngine = Pick<
  Engine,
  'config' | 'connection' | 'layout' | 'runs' | 'runningWorkers' | 'scanQueue' | 'syncQueues' | 'targets'
>;
