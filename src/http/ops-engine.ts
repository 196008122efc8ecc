import type { Engine } from '../queue/engine.js';

/**
 * What the operations surface reads from the engine: its queues, run records, Redis connection and
 * layout. Read-only by construction; nothing here enqueues or changes a job (except bull-board when
 * an operator turns `OPS_DASHBOARD_READ_ONLY` off).
 */
export type OpsEngine = Pick<
  Engine,
  'config' | 'connection' | 'layout' | 'runs' | 'scanQueue' | 'syncQueues' | 'targets'
> & {
  /**
   * This process's workers by queue name and whether each is running. Used when the engine offers it;
   * otherwise readiness asks Redis whether each queue has a worker connected anywhere.
   */
  workerStatus?: () => Record<string, boolean>;
};
