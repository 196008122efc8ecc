import type { Job } from 'bullmq';
import type { JobContext } from './context.js';

/**
 * A job as the engine runs it. The engine never imports a job body: commands and the daemon hand it the
 * list in jobs/index.ts (BullMQ's `Worker` is likewise given its processor).
 */
export interface JobDefinition {
  /** The BullMQ job name (no `:`). */
  readonly name: string;
  /** `scan`: the one scan queue; `target`: every `sync-<target>` queue (writes and removals share one rate limit). */
  readonly queue: 'scan' | 'target';
  handler(job: Job, ctx: JobContext): Promise<unknown>;
}

export interface JobSet {
  readonly jobs: readonly JobDefinition[];
  /**
   * Settles a job BullMQ failed outside its handler (stalled more than maxStalledCount, or a throw before
   * the handler settled), or its run never ends. Must be idempotent with the handlers' own settling.
   */
  onFailed(job: Job | undefined, err: Error, ctx: JobContext): Promise<unknown>;
}
